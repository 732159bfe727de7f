"""IntakeConfig: where the HTTP API listens and the limits it enforces."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.attachments import DEFAULT_MAX_ATTACHMENTS, DEFAULT_MAX_EMAIL_BYTES, EmailLimits
from core.settings import SettingError, env_float, env_int, env_str
from pool.streams import parse_rates

#: What a request carries beside an email's content: JSON, addresses, headers, tags.
REQUEST_OVERHEAD = 1024 * 1024


def request_cap(max_email_bytes: int) -> int:
    """The request size that fits a largest email: base64 carries 3 bytes in 4 characters."""
    return -(-max_email_bytes * 4 // 3) + REQUEST_OVERHEAD


@dataclass(frozen=True, kw_only=True, slots=True)
class IntakeConfig:
    """The intake API's address and request limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: On a loopback address, ``Host`` names answered beside the loopback ones (421 else).
    allowed_hosts: tuple[str, ...] = ()
    #: Seconds a connection may stay open without a whole request's headers.
    idle_timeout_s: float = 75.0
    #: Seconds a request's body may take to arrive (408 past it).
    read_timeout_s: float = 30.0
    #: An email's text, html and decoded attachments past this are refused with 413.
    max_email_bytes: int = DEFAULT_MAX_EMAIL_BYTES
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS
    #: Bodies past this are refused with 413 before they are parsed (by default, what a
    #: largest email takes as JSON with base64 attachments).
    max_request_bytes: int = request_cap(DEFAULT_MAX_EMAIL_BYTES)
    max_batch: int = 500
    #: Seconds a client is told to wait (Retry-After) when SQS is unavailable.
    retry_after_s: int = 1
    #: Emails per second each API key may submit to this process (0: no quota).
    rate_limit: float = 0.0
    #: Emails a key may submit at once before its rate applies (0: one second's worth).
    rate_burst: int = 0
    #: API keys limited to streams, (key name, its streams) each; a key not listed may
    #: send on every stream.
    key_streams: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Emails per second each API key may submit on a stream to this process, by stream
    #: (streams not named: only the key's ``rate_limit``).
    stream_rate_limits: tuple[tuple[str, float], ...] = ()

    @property
    def streams_by_key(self) -> dict[str, frozenset[str]]:
        """Each limited key's streams."""
        return {name: frozenset(streams) for name, streams in self.key_streams}

    @property
    def email_limits(self) -> EmailLimits:
        """What one email may carry."""
        return EmailLimits(max_bytes=self.max_email_bytes, max_attachments=self.max_attachments)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "IntakeConfig":
        """Read MAILPOOL_HTTP_* and the limits."""
        d = cls()
        max_email = env_int(environ, "MAILPOOL_MAX_EMAIL_BYTES", d.max_email_bytes)
        cap = request_cap(max_email)
        return cls(
            host=env_str(environ, "MAILPOOL_HTTP_HOST", d.host),
            port=env_int(environ, "MAILPOOL_HTTP_PORT", d.port),
            allowed_hosts=tuple(
                name.strip()
                for name in env_str(environ, "MAILPOOL_ALLOWED_HOSTS", "").split(",")
                if name.strip()
            ),
            idle_timeout_s=env_float(environ, "MAILPOOL_HTTP_IDLE_TIMEOUT", d.idle_timeout_s),
            read_timeout_s=env_float(environ, "MAILPOOL_HTTP_READ_TIMEOUT", d.read_timeout_s),
            max_email_bytes=max_email,
            max_attachments=env_int(environ, "MAILPOOL_MAX_ATTACHMENTS", d.max_attachments),
            max_request_bytes=env_int(environ, "MAILPOOL_MAX_REQUEST_BYTES", cap),
            max_batch=env_int(environ, "MAILPOOL_MAX_BATCH", d.max_batch),
            rate_limit=env_float(environ, "MAILPOOL_RATE_LIMIT", d.rate_limit),
            rate_burst=env_int(environ, "MAILPOOL_RATE_BURST", d.rate_burst),
            key_streams=parse_key_streams(env_str(environ, "MAILPOOL_KEY_STREAMS", "")),
            stream_rate_limits=parse_rates(
                env_str(environ, "MAILPOOL_STREAM_RATE_LIMITS", ""), "MAILPOOL_STREAM_RATE_LIMITS"
            ),
        )


def parse_key_streams(spec: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``name:stream+stream,...`` (MAILPOOL_KEY_STREAMS)."""
    found = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        name, _, streams = part.partition(":")
        names = tuple(s.strip() for s in streams.split("+") if s.strip())
        if not name.strip() or not names:
            raise SettingError(f"MAILPOOL_KEY_STREAMS entries are name:stream+stream, not {part!r}")
        found.append((name.strip(), names))
    return tuple(found)
