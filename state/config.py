"""StateConfig: the state table, how long its records live, and the secret behind ids and
unsubscribe links."""

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass

from mailpool.settings import SettingError, env_bool, env_float, env_opt, env_str

#: The shortest secret accepted (bytes).
MIN_SECRET_BYTES = 32


@dataclass(frozen=True, kw_only=True, slots=True)
class StateConfig:
    """The state store: on or off, its table, record lifetimes and the signing secret."""

    enabled: bool = False
    table: str = "mailpool-state"
    #: None leaves it to botocore (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, ...).
    endpoint_url: str | None = None
    region: str | None = None
    #: Status records expire after this many days.
    status_days: float = 30.0
    #: An Idempotency-Key is remembered this long.
    idempotency_hours: float = 24.0
    #: How long a sender trusts a suppression lookup.
    suppression_cache_s: float = 5.0
    #: The public base URL of intake, for unsubscribe links.
    public_url: str | None = None
    #: An optional mailto: address for List-Unsubscribe, next to the URL.
    unsubscribe_mailto: str | None = None
    #: Signs email ids (so a status is readable before its first record) and unsubscribe
    #: tokens; intake needs it when the state store is on.
    secret: bytes | None = None

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret) < MIN_SECRET_BYTES:
            raise SettingError(f"MAILPOOL_STATE_SECRET must hold at least {MIN_SECRET_BYTES} "
                               "bytes (base64)")  # fmt: skip
        if self.status_days <= 0 or self.idempotency_hours <= 0:
            raise SettingError("MAILPOOL_STATUS_DAYS and MAILPOOL_IDEMPOTENCY_HOURS must be > 0")

    @property
    def status_s(self) -> float:
        """Status records' lifetime in seconds."""
        return self.status_days * 86_400

    @property
    def idempotency_s(self) -> float:
        """Idempotency keys' lifetime in seconds."""
        return self.idempotency_hours * 3_600

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, prefix: str = "mailpool"
    ) -> "StateConfig":
        """Read MAILPOOL_STATE, MAILPOOL_STATE_TABLE, MAILPOOL_STATUS_DAYS,
        MAILPOOL_IDEMPOTENCY_HOURS, MAILPOOL_SUPPRESSION_CACHE_S, MAILPOOL_PUBLIC_URL,
        MAILPOOL_UNSUBSCRIBE_MAILTO and MAILPOOL_STATE_SECRET."""
        d = cls()
        return cls(
            enabled=env_bool(environ, "MAILPOOL_STATE", d.enabled),
            table=env_str(environ, "MAILPOOL_STATE_TABLE", f"{prefix}-state"),
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            status_days=env_float(environ, "MAILPOOL_STATUS_DAYS", d.status_days),
            idempotency_hours=env_float(environ, "MAILPOOL_IDEMPOTENCY_HOURS", d.idempotency_hours),
            suppression_cache_s=env_float(
                environ, "MAILPOOL_SUPPRESSION_CACHE_S", d.suppression_cache_s
            ),
            public_url=(env_opt(environ, "MAILPOOL_PUBLIC_URL") or "").rstrip("/") or None,
            unsubscribe_mailto=env_opt(environ, "MAILPOOL_UNSUBSCRIBE_MAILTO"),
            secret=decode_secret(env_opt(environ, "MAILPOOL_STATE_SECRET")),
        )


def decode_secret(raw: str | None) -> bytes | None:
    """MAILPOOL_STATE_SECRET's bytes (standard or URL-safe base64)."""
    if raw is None:
        return None
    try:
        return base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError):
        raise SettingError("MAILPOOL_STATE_SECRET must be base64") from None


def new_secret() -> str:
    """A fresh secret, as MAILPOOL_STATE_SECRET takes it."""
    return base64.urlsafe_b64encode(os.urandom(MIN_SECRET_BYTES)).decode().rstrip("=")
