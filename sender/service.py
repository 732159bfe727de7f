"""SenderService: a sender's pool, provider, metrics endpoint and worker, opened together."""

import asyncio
import contextlib
import dataclasses
import types

from core.health import Health
from core.runtime import serve
from core.sealing import Keyring
from metrics.exposition import metrics_app, process_registry
from metrics.pool import PoolMetrics
from metrics.sender import SenderMetrics
from metrics.state import StateMetrics
from pool.aws import acting_as
from pool.blobs import BlobStore
from pool.config import PoolConfig
from pool.pool import QueuePool
from sender.config import SenderConfig
from sender.providers.base import Provider
from sender.worker import Sender
from state.config import StateConfig
from state.store import State


class SenderService:
    """Runs a Sender in the background; closing stops it gracefully and closes the rest."""

    def __init__(
        self,
        pool_config: PoolConfig,
        config: SenderConfig,
        provider: Provider,
        keyring: Keyring | None = None,
        blobs: BlobStore | None = None,
        state: StateConfig | None = None,
    ) -> None:
        self.config = config
        self.registry = process_registry()
        #: Turns fatal when a background task (the worker, the pool's flushers) dies.
        self.health = Health()
        # SES feedback is the webhooks process's: a sender neither opens nor may touch it.
        own = dataclasses.replace(pool_config, ses_feedback=False)
        self.pool = QueuePool(own, PoolMetrics(self.registry), self.health, blobs)
        self.provider = provider
        self.metrics = SenderMetrics(self.registry, concurrency=config.concurrency)
        self.state = None
        if state is not None and state.enabled:
            self.state = State(state, self.health, StateMetrics(self.registry))
        self.sender = Sender(config, self.pool, provider, self.metrics, keyring, self.state)
        self.metrics_port = config.metrics_port
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "SenderService":
        with acting_as("sender"):  # the tasks it starts inherit it
            return await self._start()

    async def _start(self) -> "SenderService":
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.provider.aclose)
            await stack.enter_async_context(self.pool)
            if self.state is not None:
                await stack.enter_async_context(self.state)
            runner, self.metrics_port = await serve(
                metrics_app(self.registry, self.health),
                self.config.metrics_host,
                self.config.metrics_port,
                "MAILPOOL_METRICS_PORT or --metrics-port",
            )
            stack.push_async_callback(runner.cleanup)
            self._task = asyncio.create_task(self.sender.run(), name="sender")
            self.health.watch(self._task, "sender", may_end=lambda: self.sender.stopping)
            self._stack = stack.pop_all()
        return self

    async def wait(self) -> None:
        """Return when the worker has stopped (after ``close``) or a background task died."""
        if self._task is not None:
            died = asyncio.ensure_future(self.health.failed())
            try:
                await asyncio.wait([died, self._task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                died.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        try:
            self.sender.stop()
            if self._task is not None:
                # A worker that died was logged (with its traceback) by ``health``.
                await asyncio.gather(self._task, return_exceptions=True)
        finally:
            await self._stack.aclose()
