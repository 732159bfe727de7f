"""LocalLambdaService: the Lambda worker and a local event source, run as one process
(``mailpool lambda-source``, ``mailpool dev --worker lambda``)."""

import contextlib

from aws.client import acting_as
from core.runtime import serve
from core.service import BackgroundService
from metrics.exposition import metrics_app
from pool.config import PoolConfig
from pool.pool import QueuePool
from pool.sqs import SqsClient
from serverless.source import LocalEventSource
from serverless.worker import LambdaWorker


class LocalLambdaService(BackgroundService):
    """Polls the pool like Lambda's event source mappings (long polls of ``wait_s``) and
    invokes ``worker``; serves its metrics on ``metrics_host:metrics_port`` (0: any)."""

    def __init__(
        self,
        worker: LambdaWorker,
        pool: PoolConfig,
        metrics_host: str = "127.0.0.1",
        metrics_port: int = 0,
        wait_s: int = 20,
    ) -> None:
        super().__init__(worker.health)
        self.worker = worker
        self._pool = pool
        self._metrics_host = metrics_host
        self.metrics_port = metrics_port
        self._wait_s = wait_s
        self.source: LocalEventSource | None = None

    async def __aenter__(self) -> "LocalLambdaService":
        with acting_as("lambda"):  # the event source's calls are the function role's
            return await super().__aenter__()

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        await stack.enter_async_context(self.worker)
        client = await stack.enter_async_context(SqsClient.from_config(self._pool))
        self.source = LocalEventSource(
            self.worker, self.worker.config, self._pool, client, self._wait_s
        )
        runner, self.metrics_port = await serve(
            metrics_app(self.worker.registry, self.health),
            self._metrics_host,
            self.metrics_port,
            "MAILPOOL_METRICS_PORT or --metrics-port",
        )
        stack.push_async_callback(runner.cleanup)
        source = self.source
        self.start(source.run(), "lambda-source", lambda: source.stopping)

    @property
    def pool(self) -> QueuePool:
        """The worker's pool (depth, events waiting)."""
        return self.worker.pool

    def stop(self) -> None:
        if self.source is not None:
            self.source.stop()
