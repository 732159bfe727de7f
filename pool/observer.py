"""What the pool tells whoever watches it (``metrics.pool.PoolMetrics`` in a process): each
batch call's outcome per action and shard, each enqueue, each body offloaded to S3. The
pool declares it and calls it; it never imports the metrics that implement it."""

from typing import Protocol

from aws.coalesce import CallObserver


class PoolObserver(Protocol):
    """Told of every call, enqueue and offload of a ``QueuePool``."""

    def observer(self, action: str, shard: int | str) -> CallObserver:
        """The observer of one coalescer's calls (``action`` on ``shard``)."""
        ...

    def enqueued(self, shard: int) -> None:
        """A message reached ``shard``."""
        ...

    def offloaded(self) -> None:
        """A body went to S3 (the queue carries a pointer)."""
        ...
