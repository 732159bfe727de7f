"""What both faces of the sender stand on — the long-running process (``sender/service.py``)
and the Lambda worker (``serverless/worker.py``): one assembly of its pool (the consumer's
role), its provider (rated per stream), its metrics and state store, and the delivery code
and settler built on them."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from core.health import Health
from core.sealing import Keyring
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from metrics.sender import SenderMetrics
from pool.blobs import BlobStore
from pool.config import PoolConfig
from pool.pool import QueuePool
from pool.queues import Role
from sender.config import SenderConfig
from sender.delivery import Delivery
from sender.providers.base import Provider
from sender.providers.ratelimit import stream_rated
from sender.settle import Settler
from state.config import StateConfig
from state.publisher import Publisher
from state.store import State


@dataclass(frozen=True, kw_only=True, slots=True)
class SenderParts:
    """A sender's parts, opened and closed together (``open``)."""

    registry: CollectorRegistry
    pool: QueuePool
    provider: Provider
    metrics: SenderMetrics
    state: State | None
    keyring: Keyring | None

    @classmethod
    def assemble(
        cls,
        pool_config: PoolConfig,
        config: SenderConfig,
        provider: Provider,
        health: Health,
        *,
        concurrency: int,
        keyring: Keyring | None = None,
        blobs: BlobStore | None = None,
        state: StateConfig | None = None,
    ) -> "SenderParts":
        """The parts on ``pool_config`` (less the SES feedback queue, which webhooks read),
        their background tasks watched by ``health``; ``concurrency`` emails at most in
        flight (the metrics' gauge of capacity)."""
        registry = process_registry()
        own = pool_config.without_ses_feedback
        pool = QueuePool(own, PoolMetrics(registry), health, blobs, Role.CONSUMER)
        return cls(
            registry=registry,
            pool=pool,
            provider=stream_rated(provider, config.stream_rates, own.all_streams),
            metrics=SenderMetrics(registry, concurrency=concurrency),
            state=State.of_process(state, health, registry),
            keyring=keyring,
        )

    def delivery(self, config: SenderConfig, stopping: Callable[[], bool]) -> Delivery:
        """The delivery code on these parts."""
        return Delivery(
            config,
            self.provider,
            self.metrics,
            max_receives=self.pool.config.max_receive_count,
            stopping=stopping,
            keyring=self.keyring,
            body=self.pool.body,
            suppressions=None if self.state is None else self.state.suppressions,
        )

    def settler(self, *, source_deletes: bool) -> Settler:
        """The settler on these parts (``source_deletes``: under a Lambda event source)."""
        publisher = Publisher(self.pool, self.keyring, self.state, self.metrics.published)
        return Settler(self.pool, publisher, source_deletes=source_deletes)

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        """Open the pool and the state store on ``stack``; the provider closes with it."""
        stack.push_async_callback(self.provider.aclose)
        await stack.enter_async_context(self.pool)
        if self.state is not None:
            await stack.enter_async_context(self.state)
