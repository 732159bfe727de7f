"""LambdaConfig: the Lambda worker's clock margin and its local event source's batching."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.settings import env_float, env_int
from pool.config import PoolConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class LambdaConfig:
    """How the handler spends an invocation, and how the local event source batches."""

    #: No send starts with less than this left of the invocation; what is not started goes
    #: back as a failure (it is visible again at once).
    margin_s: float = 10.0
    #: The local event source (and the template's event source mappings): records per
    #: invocation (SQS FIFO allows 1..10) and how long a batch may wait to fill.
    batch_size: int = 10
    batching_window_s: float = 0.0
    #: Invocations at once across the pool, shared by its shards' event source mappings
    #: (their MaximumConcurrency); a stream's mappings get its cap of it.
    max_concurrency: int = 16
    #: The function timeout the local event source gives each invocation.
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10:
            raise ValueError("batch_size must be within 1..10 (an SQS FIFO event source)")
        if not 0 <= self.batching_window_s <= 300:
            raise ValueError("batching_window_s must be within 0..300")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if not 0 <= self.margin_s < self.timeout_s:
            raise ValueError("margin_s must be at least 0 and below timeout_s")

    def shard_concurrency(self, pool: PoolConfig, floor: int = 1) -> tuple[int, ...]:
        """Each shard's MaximumConcurrency, by shard: its stream's cap of
        ``max_concurrency`` split over the stream's shards, at least ``floor`` each (Lambda's
        is 2). Lambda's mappings poll on their own, so weights cannot apply; the caps keep
        bulk's invocations from taking what transactional needs."""
        found: list[int] = []
        for stream in pool.all_streams:
            share = int(self.max_concurrency * stream.cap) // stream.shards
            found.extend([max(floor, share)] * stream.shards)
        return tuple(found)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "LambdaConfig":
        """Read MAILPOOL_LAMBDA_MARGIN, MAILPOOL_LAMBDA_BATCH_SIZE and the rest."""
        d = cls()
        return cls(
            margin_s=env_float(environ, "MAILPOOL_LAMBDA_MARGIN", d.margin_s),
            batch_size=env_int(environ, "MAILPOOL_LAMBDA_BATCH_SIZE", d.batch_size),
            batching_window_s=env_float(environ, "MAILPOOL_LAMBDA_WINDOW", d.batching_window_s),
            max_concurrency=env_int(environ, "MAILPOOL_LAMBDA_CONCURRENCY", d.max_concurrency),
            timeout_s=env_float(environ, "MAILPOOL_LAMBDA_TIMEOUT", d.timeout_s),
        )
