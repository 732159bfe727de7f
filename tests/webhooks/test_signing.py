"""Signatures: mailpool's requests verify with the Standard Webhooks reference library."""

import time
from datetime import UTC, datetime

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhooks import signing


def test_the_reference_library_verifies_mailpool_s_signature() -> None:
    secret = signing.new_secret()
    body = orjson.dumps({"type": "email.sent", "id": "evt_1", "data": {"email_id": "e1"}})
    headers = signing.headers(signing.secret_key(secret), "evt_1", body)
    assert Webhook(secret).verify(body, headers)["data"]["email_id"] == "e1"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"e1", b"e2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_mailpool_verifies_what_the_reference_library_signs() -> None:
    secret = signing.new_secret()
    key = signing.secret_key(secret)
    body = b'{"type":"email.bounced"}'
    now = int(time.time())
    sent_at = datetime.fromtimestamp(now, tz=UTC)
    headers = {
        "webhook-id": "evt_2",
        "webhook-timestamp": str(now),
        "webhook-signature": Webhook(secret).sign("evt_2", sent_at, body.decode()),
    }
    assert signing.verify(key, headers, body) == "evt_2"
    with pytest.raises(signing.SignatureError):
        signing.verify(key, headers, body + b" ")
    with pytest.raises(signing.SignatureError):  # replayed long after
        signing.verify(key, headers, body, now=now + 3600)


@pytest.mark.parametrize("secret", ["", "plain", "whsec_not*base64", "whsec_c2hvcnQ="])
def test_a_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing.secret_key(secret)


def test_a_secret_being_rotated_signs_with_both_so_either_receiver_verifies() -> None:
    new, old = signing.new_secret(), signing.new_secret()
    key, *previous = signing.secret_keys(f"{new} {old}")
    body = orjson.dumps({"type": "email.sent", "id": "evt_2", "data": {"email_id": "e2"}})
    headers = signing.headers(key, "evt_2", body, previous=previous)
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (new, old):  # the receiver may switch at any moment of the rotation
        assert Webhook(secret).verify(body, headers)["id"] == "evt_2"
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(ValueError, match="whsec_"):
        signing.secret_keys(f"{new} not-a-secret")
