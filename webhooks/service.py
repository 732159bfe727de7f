"""WebhooksService: the dispatcher with its pool, HTTP sessions and metrics endpoint."""

import contextlib
from collections.abc import Sequence

import aiohttp

from aws.client import acting_as
from core.health import Health
from core.runtime import serve
from core.sealing import Keyring
from core.service import BackgroundService
from metrics.exposition import metrics_app, process_registry
from metrics.pool import PoolMetrics
from metrics.webhooks import WebhookMetrics
from pool.config import PoolConfig
from pool.pool import QueuePool
from pool.queues import Role
from state.config import StateConfig
from state.store import State
from webhooks.config import WebhooksConfig
from webhooks.dispatcher import Dispatcher
from webhooks.endpoints import Endpoint
from webhooks.safety import GuardedResolver


class WebhooksService(BackgroundService):
    """Runs a Dispatcher in the background; closing stops it and closes the rest."""

    def __init__(
        self,
        pool_config: PoolConfig,
        config: WebhooksConfig,
        endpoints: Sequence[Endpoint],
        keyring: Keyring | None = None,
        state: StateConfig | None = None,
    ) -> None:
        super().__init__(Health())
        self.config = config
        self.endpoints = list(endpoints)
        self.registry = process_registry()
        self.pool = QueuePool(
            pool_config, PoolMetrics(self.registry), self.health, role=Role.EVENTS
        )
        self.state = State.of_process(state, self.health, self.registry)
        self.metrics = WebhookMetrics(self.registry, [e.name for e in endpoints])
        self.keyring = keyring
        self.metrics_port = config.metrics_port
        self.dispatcher: Dispatcher | None = None

    async def __aenter__(self) -> "WebhooksService":
        with acting_as("webhooks"):  # the tasks it starts inherit it
            return await super().__aenter__()

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        await stack.enter_async_context(self.pool)
        if self.state is not None:
            await stack.enter_async_context(self.state)
        # Public endpoints resolve through a guard that refuses internal addresses; no
        # cookies are kept, and nothing is pooled across endpoints' credentials.
        public = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=GuardedResolver()),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        )
        internal = await stack.enter_async_context(
            aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        )
        self.dispatcher = Dispatcher(
            self.config,
            self.pool,
            self.endpoints,
            self.metrics,
            public=public,
            internal=internal,
            keyring=self.keyring,
            state=self.state,
        )
        runner, self.metrics_port = await serve(
            metrics_app(self.registry, self.health),
            self.config.metrics_host,
            self.config.metrics_port,
            "MAILPOOL_WEBHOOK_METRICS_PORT or --metrics-port "
            "(mailpool dev: --webhooks-metrics-port)",
        )
        stack.push_async_callback(runner.cleanup)
        dispatcher = self.dispatcher
        self.start(dispatcher.run(), "webhooks", lambda: dispatcher.stopping)

    def stop(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.stop()
