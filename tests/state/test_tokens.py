"""Signed ids and unsubscribe tokens across a rotation of the state secret."""

import pytest

from core.settings import SettingError
from state.config import StateConfig, new_secret
from state.tokens import Signer, Unsubscribe

WHAT = Unsubscribe("shop", "news", "ana@example.test", "e1")


def test_a_rotated_secret_signs_anew_and_still_honours_what_the_old_one_signed() -> None:
    old, new = new_secret(), new_secret()
    before = StateConfig.from_env({"MAILPOOL_STATE_SECRET": old})
    during = StateConfig.from_env({"MAILPOOL_STATE_SECRET": f"{new}, {old}"})
    after = StateConfig.from_env({"MAILPOOL_STATE_SECRET": new})
    assert before.secret is not None
    assert during.secret is not None
    assert after.secret is not None
    signed_before = Signer(before.secret, before.previous_secrets)
    signed_during = Signer(during.secret, during.previous_secrets)
    signed_after = Signer(after.secret, after.previous_secrets)
    old_id, old_link = signed_before.new_id("shop"), signed_before.unsubscribe_token(WHAT)
    new_id, new_link = signed_during.new_id("shop"), signed_during.unsubscribe_token(WHAT)
    # During the rotation both generations open; what it signs is the new secret's.
    for signer in (signed_during, signed_after):
        assert signer.issued_at("shop", new_id) is not None
        assert signer.read_unsubscribe_token(new_link) == WHAT
    assert signed_during.issued_at("shop", old_id) is not None
    assert signed_during.read_unsubscribe_token(old_link) == WHAT
    # Once the old secret is dropped, what it alone signed no longer opens; nor elsewhere.
    assert signed_after.issued_at("shop", old_id) is None
    assert signed_after.read_unsubscribe_token(old_link) is None
    assert signed_before.issued_at("shop", new_id) is None
    assert signed_during.issued_at("other-key", new_id) is None


def test_every_listed_secret_must_be_long_enough() -> None:
    with pytest.raises(SettingError, match="per secret"):
        StateConfig.from_env({"MAILPOOL_STATE_SECRET": f"{new_secret()},c2hvcnQ"})
