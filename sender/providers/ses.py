"""AWS SES (v2) delivery: SendEmail with the raw MIME message, so SES sends exactly what
SMTP would (same headers, same Message-ID).

SES's throttling ("Maximum sending rate exceeded", TooManyRequestsException) and its
daily quota are delays, not failures; a refused message is permanent; anything else
(connection trouble, 5xx, a paused account) is transient.
"""

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from mailpool.envelope import Envelope
from mailpool.settings import env_float, env_int, env_opt
from sender.mime import build_message
from sender.providers.base import DelayError, PermanentError, TransientError

_DELAY_CODES = frozenset(
    {"TooManyRequestsException", "ThrottlingException", "Throttling", "LimitExceededException"}
)
_PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "BadRequestException",
        "InvalidParameterValue",
        "NotFoundException",
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SesConfig:
    """SES settings; endpoint, region and credentials come the standard AWS way."""

    region: str | None = None
    endpoint_url: str | None = None
    configuration_set: str | None = None
    timeout_s: float = 30.0
    max_connections: int = 32
    message_id_domain: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "SesConfig":
        """Read MAILPOOL_SES_* (and AWS_REGION / AWS_DEFAULT_REGION)."""
        d = cls()
        return cls(
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            configuration_set=env_opt(environ, "MAILPOOL_SES_CONFIGURATION_SET"),
            timeout_s=env_float(environ, "MAILPOOL_SES_TIMEOUT", d.timeout_s),
            max_connections=env_int(environ, "MAILPOOL_SES_MAX_CONNECTIONS", d.max_connections),
            message_id_domain=env_opt(environ, "MAILPOOL_MESSAGE_ID_DOMAIN"),
        )


def _classify(exc: Exception) -> TransientError | PermanentError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if code in _DELAY_CODES or "Maximum sending rate exceeded" in message:
            return DelayError(f"ses_{code}")
        if code in _PERMANENT_CODES:
            return PermanentError(f"ses_{code}")
        return TransientError(f"ses_{code}")
    return TransientError(f"ses_{type(exc).__name__}")


class SesProvider:
    """Delivers envelopes through SES v2 with one aiobotocore client."""

    name = "ses"

    def __init__(self, config: SesConfig) -> None:
        self._config = config
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _open(self) -> Any:
        if self._client is None:
            cfg = self._config
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "sesv2",
                    region_name=cfg.region,
                    endpoint_url=cfg.endpoint_url,
                    config=AioConfig(
                        connect_timeout=cfg.timeout_s,
                        read_timeout=cfg.timeout_s,
                        max_pool_connections=cfg.max_connections,
                        retries={"total_max_attempts": 1, "mode": "standard"},
                    ),
                )
            )
        return self._client

    async def send(self, envelope: Envelope) -> None:
        """Send one envelope as raw MIME to every recipient."""
        email = envelope.email
        raw = build_message(envelope, self._config.message_id_domain).as_bytes()
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender.addr,
            "Destination": {
                "ToAddresses": [m.addr for m in email.to],
                "CcAddresses": [m.addr for m in email.cc],
                "BccAddresses": [m.addr for m in email.bcc],
            },
            "Content": {"Raw": {"Data": raw}},
        }
        if self._config.configuration_set:
            request["ConfigurationSetName"] = self._config.configuration_set
        try:
            client = await self._open()
            await client.send_email(**request)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise _classify(exc) from None

    async def aclose(self) -> None:
        """Close the client."""
        await self._stack.aclose()
        self._client = None
