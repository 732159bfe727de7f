"""AWS SES (v2) delivery: SendEmail with the raw MIME message, so SES sends exactly what
SMTP would (same headers, same Message-ID).

SES's throttling ("Maximum sending rate exceeded", TooManyRequestsException) and its
daily quota are delays, not failures; a refused message is permanent; anything else
(connection trouble, 5xx, a paused account) is transient.
"""

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws.client import AwsClient, error_code, error_message
from core.envelope import Envelope
from core.events import ID_TAG, SCOPE_TAG
from core.settings import env_float, env_int, env_opt, env_str
from pool.streams import DEFAULT, parse_values
from sender.mime import render
from sender.providers.base import Accepted, DelayError, PermanentError, TransientError

#: What SES accepts in a message tag's value. Every key name is checked against it at load
#: (``intake.auth.check_name``), so each email's scope travels to SES and back with its
#: bounces and complaints.
TAG_VALUE = re.compile(r"[A-Za-z0-9_-]{1,256}")
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
    #: Each stream's configuration set (its own IP pool, event destination, reputation), in
    #: place of ``configuration_set`` for that stream's emails.
    configuration_sets: tuple[tuple[str, str], ...] = ()
    #: The stream of an envelope written before streams (the pool's first).
    first_stream: str = DEFAULT
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
            configuration_sets=parse_values(
                env_str(environ, "MAILPOOL_SES_CONFIGURATION_SETS", ""),
                "MAILPOOL_SES_CONFIGURATION_SETS",
            ),
            timeout_s=env_float(environ, "MAILPOOL_SES_TIMEOUT", d.timeout_s),
            max_connections=env_int(environ, "MAILPOOL_SES_MAX_CONNECTIONS", d.max_connections),
            message_id_domain=env_opt(environ, "MAILPOOL_MESSAGE_ID_DOMAIN"),
        )


def _classify(exc: Exception) -> TransientError | PermanentError:
    code, _ = error_code(exc)
    if code in _DELAY_CODES or "Maximum sending rate exceeded" in error_message(exc):
        return DelayError(f"ses_{code}")
    if code in _PERMANENT_CODES:
        return PermanentError(f"ses_{code}")
    return TransientError(f"ses_{code or type(exc).__name__}")


class SesProvider(AwsClient):
    """Delivers envelopes through SES v2 with one client, opened on first use."""

    name = "ses"
    service = "sesv2"

    def __init__(self, config: SesConfig) -> None:
        super().__init__(
            region=config.region,
            endpoint_url=config.endpoint_url,
            connect_timeout_s=config.timeout_s,
            read_timeout_s=config.timeout_s,
            max_connections=config.max_connections,
        )
        self._settings = config
        self._sets = dict(config.configuration_sets)
        self._opening = asyncio.Lock()

    def failure(self, action: str, exc: Exception) -> Exception:
        """A failed SendEmail as a delivery error."""
        return _classify(exc)

    async def send(self, envelope: Envelope) -> Accepted:
        """Send one envelope as raw MIME to every recipient, tagged with its mailpool id
        (``mailpool-id``) so that SES's event notifications can be matched to it."""
        email = envelope.email
        raw = render(envelope, self._settings.message_id_domain)
        request: dict[str, Any] = {
            "FromEmailAddress": email.sender.addr,
            "Destination": {
                "ToAddresses": email.kept(email.to, 0),
                "CcAddresses": email.kept(email.cc, len(email.to)),
                "BccAddresses": email.kept(email.bcc, len(email.to) + len(email.cc)),
            },
            "Content": {"Raw": {"Data": raw}},
            "EmailTags": [{"Name": ID_TAG, "Value": envelope.id}],
        }
        if envelope.scope and TAG_VALUE.fullmatch(envelope.scope):
            request["EmailTags"].append({"Name": SCOPE_TAG, "Value": envelope.scope})
        stream = envelope.stream or self._settings.first_stream
        configuration_set = self._sets.get(stream, self._settings.configuration_set)
        if configuration_set:
            request["ConfigurationSetName"] = configuration_set
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    await self.__aenter__()
        await self._call("send_email", **request)
        return Accepted()  # SES reports refusals later, as bounce notifications

    async def aclose(self) -> None:
        """Close the client."""
        await self.__aexit__(None, None, None)
