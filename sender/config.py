"""SenderConfig: how many messages the worker holds and how it retries them."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.settings import env_float, env_int, env_str
from pool.streams import parse_rates


@dataclass(frozen=True, kw_only=True, slots=True)
class SenderConfig:
    """The worker's concurrency, polling, retry and shutdown settings."""

    #: Messages in flight (received, not yet settled) across all shards of this process.
    concurrency: int = 64
    #: Bytes of bodies carried through S3 (past the queue's limit) that this process holds
    #: at once; one larger than this still goes, alone. Bounds memory whatever the sizes.
    large_bytes: int = 64 * 1024 * 1024
    #: Long-poll wait per receive call (SQS allows 0..20 s).
    wait_time_s: int = 20
    #: First transient-failure backoff; doubles with each receive, capped below.
    backoff_s: int = 5
    max_backoff_s: int = 900
    #: How long a send may keep waiting out provider throttling before it counts as failed.
    delay_budget_s: float = 600.0
    #: On stop: how long in-flight sends may take before they are cancelled and released.
    grace_s: float = 30.0
    #: How often queue depth and the age of the oldest message are polled.
    depth_interval_s: float = 15.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    #: The streams this sender serves (empty: every stream): a sender dedicated to
    #: transactional mail scales, and fails, on its own.
    streams: tuple[str, ...] = ()
    #: Messages/s this process may hand to the providers, by stream (streams not named:
    #: no cap of their own), ahead of each provider's own rate.
    stream_rates: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.large_bytes < 1:
            raise ValueError("large_bytes must be at least 1")
        if not 0 <= self.wait_time_s <= 20:
            raise ValueError("wait_time_s must be within 0..20")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "SenderConfig":
        """Read MAILPOOL_CONCURRENCY, MAILPOOL_WAIT_TIME, MAILPOOL_METRICS_* and the rest."""
        d = cls()
        return cls(
            concurrency=env_int(environ, "MAILPOOL_CONCURRENCY", d.concurrency),
            large_bytes=env_int(environ, "MAILPOOL_SENDER_LARGE_BYTES", d.large_bytes),
            wait_time_s=env_int(environ, "MAILPOOL_WAIT_TIME", d.wait_time_s),
            backoff_s=env_int(environ, "MAILPOOL_BACKOFF", d.backoff_s),
            max_backoff_s=env_int(environ, "MAILPOOL_MAX_BACKOFF", d.max_backoff_s),
            grace_s=env_float(environ, "MAILPOOL_GRACE", d.grace_s),
            delay_budget_s=env_float(environ, "MAILPOOL_DELAY_BUDGET", d.delay_budget_s),
            depth_interval_s=env_float(environ, "MAILPOOL_DEPTH_INTERVAL", d.depth_interval_s),
            metrics_host=env_str(environ, "MAILPOOL_METRICS_HOST", d.metrics_host),
            metrics_port=env_int(environ, "MAILPOOL_METRICS_PORT", d.metrics_port),
            streams=tuple(
                s.strip()
                for s in env_str(environ, "MAILPOOL_SENDER_STREAMS", "").split(",")
                if s.strip()
            ),
            stream_rates=parse_rates(
                env_str(environ, "MAILPOOL_STREAM_RATES", ""), "MAILPOOL_STREAM_RATES"
            ),
        )
