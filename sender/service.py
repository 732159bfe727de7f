"""SenderService: a sender's pool, provider, metrics endpoint and worker, opened together."""

import contextlib

from aws.client import acting_as
from core.health import Health
from core.runtime import serve
from core.sealing import Keyring
from core.service import BackgroundService
from core.settings import SettingError
from metrics.exposition import metrics_app
from pool.blobs import BlobStore
from pool.config import PoolConfig
from pool.streams import check_names
from sender.config import SenderConfig
from sender.parts import SenderParts
from sender.providers.base import Provider
from sender.worker import Sender
from state.config import StateConfig


class SenderService(BackgroundService):
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
        if not pool_config.fifo:
            raise SettingError(
                "the sender needs FIFO shards (MAILPOOL_QUEUE_TYPE=fifo): standard queues are "
                "the Lambda worker's variant (mailpool lambda-source, deploy template "
                "--worker lambda)"
            )
        check_names(config.streams, pool_config.all_streams, "MAILPOOL_SENDER_STREAMS")
        super().__init__(Health())
        self.config = config
        self.parts = parts = SenderParts.assemble(
            pool_config,
            config,
            provider,
            self.health,
            concurrency=config.concurrency,
            keyring=keyring,
            blobs=blobs,
            state=state,
        )
        self.registry, self.pool, self.provider = parts.registry, parts.pool, parts.provider
        self.metrics, self.state = parts.metrics, parts.state
        self.sender = Sender(config, parts)
        self.metrics_port = config.metrics_port

    async def __aenter__(self) -> "SenderService":
        with acting_as("sender"):  # the tasks it starts inherit it
            return await super().__aenter__()

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        await self.parts.open(stack)
        runner, self.metrics_port = await serve(
            metrics_app(self.registry, self.health),
            self.config.metrics_host,
            self.config.metrics_port,
            "MAILPOOL_METRICS_PORT or --metrics-port",
        )
        stack.push_async_callback(runner.cleanup)
        self.start(self.sender.run(), "sender", lambda: self.sender.stopping)

    def stop(self) -> None:
        self.sender.stop()
