"""WebhooksConfig: how the dispatcher polls, how long an attempt may take, the retry schedule."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.settings import env_float, env_int, env_str

#: Seconds after each failed attempt before the next, per endpoint: about a day in all.
SCHEDULE_S = (5, 300, 1800, 7200, 18000, 36000, 36000)


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhooksConfig:
    """The dispatcher's concurrency, timing and retry schedule."""

    #: Events in flight (received, not yet settled) in this process.
    concurrency: int = 64
    #: Requests in flight per endpoint: a slow endpoint cannot take every slot.
    per_endpoint: int = 16
    wait_time_s: int = 20
    #: Seconds an event stays hidden while its deliveries run.
    visibility_s: int = 60
    #: One attempt's time limit (connect, send, answer).
    attempt_timeout_s: float = 10.0
    schedule_s: tuple[int, ...] = SCHEDULE_S
    #: Failures in a row before an endpoint's circuit opens, and for how long.
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9102

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "WebhooksConfig":
        """Read MAILPOOL_WEBHOOK_* settings."""
        d = cls()
        raw = env_str(environ, "MAILPOOL_WEBHOOK_SCHEDULE", "")
        try:
            schedule = tuple(int(s) for s in raw.split(",")) if raw else d.schedule_s
        except ValueError:
            raise ValueError("MAILPOOL_WEBHOOK_SCHEDULE is seconds, comma-separated") from None
        return cls(
            concurrency=env_int(environ, "MAILPOOL_WEBHOOK_CONCURRENCY", d.concurrency),
            wait_time_s=env_int(environ, "MAILPOOL_WAIT_TIME", d.wait_time_s),
            attempt_timeout_s=env_float(environ, "MAILPOOL_WEBHOOK_TIMEOUT", d.attempt_timeout_s),
            schedule_s=schedule,
            breaker_cooldown_s=env_float(
                environ, "MAILPOOL_WEBHOOK_COOLDOWN", d.breaker_cooldown_s
            ),
            metrics_host=env_str(environ, "MAILPOOL_WEBHOOK_METRICS_HOST", d.metrics_host),
            metrics_port=env_int(environ, "MAILPOOL_WEBHOOK_METRICS_PORT", d.metrics_port),
        )
