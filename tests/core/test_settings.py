"""Settings: declared once (core/catalog.py), read in one place (core/settings.py), and the
configuration page generated from the declaration."""

import asyncio
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from core import settings
from core.catalog import DECLARED, Value
from core.sealing import Keyring
from intake.auth import Authenticator
from intake.config import IntakeConfig
from localsqs.server import LocalSqsConfig
from mailpool import admin
from mailpool.cli import main
from pool.blobs import BlobConfig
from pool.config import PoolConfig
from sender.config import SenderConfig
from sender.providers import make_provider
from sender.providers.ses import SesConfig
from sender.providers.smtp import SmtpConfig
from serverless.config import LambdaConfig
from serverless.secrets import read_secrets
from state.config import StateConfig
from webhooks import endpoints
from webhooks.config import WebhooksConfig
from webhooks.signing import new_secret

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: Every reader of settings, as a process calls it.
READERS: list[Callable[[Mapping[str, str]], Any]] = [
    PoolConfig.from_env, BlobConfig.from_env, IntakeConfig.from_env, SenderConfig.from_env,
    SmtpConfig.from_env, SesConfig.from_env, WebhooksConfig.from_env, LocalSqsConfig.from_env,
    StateConfig.from_env, Authenticator.from_env, Keyring.from_env, LambdaConfig.from_env,
    lambda environ: asyncio.run(read_secrets(dict(environ))),  # MAILPOOL_STATE_SECRET_ARN
    lambda environ: make_provider(None, environ),  # MAILPOOL_PROVIDERS
    lambda environ: make_provider("smtp,ses", environ),  # failover, each provider's rate
    # The endpoint's other settings are read once it has a URL (their defaults all the same).
    lambda environ: endpoints.from_env({**environ, "MAILPOOL_WEBHOOK_URL": "https://x.test/h",
                                        "MAILPOOL_WEBHOOK_SECRET": new_secret()}),
]  # fmt: skip


def test_every_default_the_code_falls_back_to_is_the_declared_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Value] = {}
    declared = settings._declared

    def record(name: str, kind: str, default: Value) -> None:
        declared(name, kind, default)
        seen[name] = default

    monkeypatch.setattr(settings, "_declared", record)
    for read in READERS:
        read({})
    drifted = {n: (DECLARED[n].default, d) for n, d in seen.items() if DECLARED[n].default != d}
    assert not drifted, drifted
    # What these readers leave out, the command line itself reads.
    assert set(DECLARED) - set(seen) == {"MAILPOOL_LOG_LEVEL", "MAILPOOL_AWS_RECORD"}


def test_a_setting_is_read_only_as_it_is_declared() -> None:
    with pytest.raises(LookupError, match="MAILPOOL_NO_SUCH_THING"):
        settings.env_int({}, "MAILPOOL_NO_SUCH_THING", 1)
    with pytest.raises(LookupError, match="MAILPOOL_SHARDS is not declared as a str"):
        settings.env_str({"MAILPOOL_SHARDS": "4"}, "MAILPOOL_SHARDS", "4")
    with pytest.raises(settings.SettingError, match="MAILPOOL_SHARDS must be an integer"):
        PoolConfig.from_env({"MAILPOOL_SHARDS": "four"})


def test_the_configuration_page_is_generated_from_the_declaration() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == admin.config_markdown(), (
        "run: mailpool config --markdown > docs/configuration.md"
    )
    for name in DECLARED:
        assert f"`{name}`" in page


def test_config_shows_what_a_process_reads_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAILPOOL_SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("MAILPOOL_CONCURRENCY", "8")
    monkeypatch.delenv("MAILPOOL_GRACE", raising=False)
    assert main(["config", "--process", "sender"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "MAILPOOL_SMTP_PASSWORD=****" in shown
    assert "MAILPOOL_CONCURRENCY=8" in shown
    assert "MAILPOOL_GRACE=30  (default)" in shown
    assert not [line for line in shown if "hunter2" in line or "MAILPOOL_HTTP_PORT" in line]
