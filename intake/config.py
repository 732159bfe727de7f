"""IntakeConfig: where the HTTP API listens and the limits it enforces."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mailpool.settings import env_float, env_int, env_str


@dataclass(frozen=True, kw_only=True, slots=True)
class IntakeConfig:
    """The intake API's address and request limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    #: Bodies past this are refused with 413 before they are parsed.
    max_request_bytes: int = 16 * 1024 * 1024
    max_batch: int = 500
    #: Seconds a client is told to wait (Retry-After) when SQS is unavailable.
    retry_after_s: int = 1
    #: Emails per second each API key may submit to this process (0: no quota).
    rate_limit: float = 0.0
    #: Emails a key may submit at once before its rate applies (0: one second's worth).
    rate_burst: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "IntakeConfig":
        """Read MAILPOOL_HTTP_* and the limits."""
        d = cls()
        return cls(
            host=env_str(environ, "MAILPOOL_HTTP_HOST", d.host),
            port=env_int(environ, "MAILPOOL_HTTP_PORT", d.port),
            max_request_bytes=env_int(environ, "MAILPOOL_MAX_REQUEST_BYTES", d.max_request_bytes),
            max_batch=env_int(environ, "MAILPOOL_MAX_BATCH", d.max_batch),
            rate_limit=env_float(environ, "MAILPOOL_RATE_LIMIT", d.rate_limit),
            rate_burst=env_int(environ, "MAILPOOL_RATE_BURST", d.rate_burst),
        )
