"""StateConfig: the state table, how long its records live, and the secret behind ids and
unsubscribe links."""

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.settings import SettingError, env_bool, env_float, env_opt, env_str

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
    #: Secrets being rotated out: what they signed is still honoured, nothing new is signed.
    previous_secrets: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for secret in (self.secret, *self.previous_secrets):
            if secret is not None and len(secret) < MIN_SECRET_BYTES:
                raise SettingError(
                    f"MAILPOOL_STATE_SECRET must hold at least "
                    f"{MIN_SECRET_BYTES} bytes (base64) per secret"
                )
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
        cls,
        environ: Mapping[str, str] = os.environ,
        prefix: str = "mailpool",
        endpoint_url: str | None = None,
    ) -> "StateConfig":
        """Read MAILPOOL_STATE, MAILPOOL_STATE_TABLE, MAILPOOL_STATUS_DAYS,
        MAILPOOL_IDEMPOTENCY_HOURS, MAILPOOL_SUPPRESSION_CACHE_S, MAILPOOL_PUBLIC_URL,
        MAILPOOL_UNSUBSCRIBE_MAILTO and MAILPOOL_STATE_SECRET (the table ``<prefix>-state``
        unless named; ``endpoint_url``, the pool's engine, serves it too when given)."""
        d = cls()
        secrets = decode_secrets(env_opt(environ, "MAILPOOL_STATE_SECRET"))
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
            secret=secrets[0] if secrets else None,
            previous_secrets=secrets[1:],
            **({"endpoint_url": endpoint_url} if endpoint_url else {}),
        )


def decode_secret(raw: str | None) -> bytes | None:
    """MAILPOOL_STATE_SECRET's bytes (standard or URL-safe base64)."""
    if raw is None:
        return None
    try:
        return base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError):
        raise SettingError("MAILPOOL_STATE_SECRET must be base64") from None


def decode_secrets(raw: str | None) -> tuple[bytes, ...]:
    """MAILPOOL_STATE_SECRET's secrets, comma-separated: the first signs, every one verifies
    (rotation: put the new one first, keep the old one until what it signed has expired)."""
    parts = [part.strip() for part in (raw or "").split(",") if part.strip()]
    return tuple(secret for part in parts if (secret := decode_secret(part)) is not None)


def new_secret() -> str:
    """A fresh secret, as MAILPOOL_STATE_SECRET takes it."""
    return base64.urlsafe_b64encode(os.urandom(MIN_SECRET_BYTES)).decode().rstrip("=")
