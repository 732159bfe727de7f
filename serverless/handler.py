"""The Lambda function's entry point: ``serverless.handler.handler``.

The first invocation of an execution environment builds the worker from the environment
(the same ``MAILPOOL_*`` settings as ``mailpool sender``) on an event loop of its own;
later (warm) invocations reuse both, so connections, credentials and caches survive. A
worker whose background task died is closed, the invocation fails (its whole batch goes
back) and the next one opens a fresh worker.
"""

import asyncio
import logging
import os
from typing import Any

from aws import client as aws
from aws.client import acting_as
from core import logs
from core.sealing import Keyring
from core.settings import env_opt, env_str
from pool.blobs import BlobStore
from pool.config import PoolConfig
from sender.config import SenderConfig
from sender.providers import make_provider
from serverless.config import LambdaConfig
from serverless.secrets import read_secrets
from serverless.worker import Context, LambdaWorker, WorkerDied
from state.config import StateConfig

log = logging.getLogger(__name__)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def worker_from_env() -> LambdaWorker:
    """The worker the environment describes (its clients are opened on first use)."""
    pool = PoolConfig.from_env()
    return LambdaWorker(
        pool,
        SenderConfig.from_env(),
        LambdaConfig.from_env(),
        make_provider(streams=pool.all_streams),
        Keyring.from_env(),
        BlobStore.from_env(),
        StateConfig.from_env(prefix=pool.prefix, endpoint_url=pool.endpoint_url),
        metrics_line=True,
    )


class Runtime:
    """One execution environment's loop and worker, kept between invocations."""

    def __init__(self) -> None:
        logs.setup(env_str(os.environ, "MAILPOOL_LOG_LEVEL", "INFO"))
        aws.record_calls(env_opt(os.environ, "MAILPOOL_AWS_RECORD"))  # the tests' record
        self.loop = _new_loop()
        self.worker: LambdaWorker | None = None

    def invoke(self, event: dict[str, Any], context: Context) -> dict[str, Any]:
        """Run one invocation to its answer on the kept loop."""
        return self.loop.run_until_complete(self._invoke(event, context))

    async def _invoke(self, event: dict[str, Any], context: Context) -> dict[str, Any]:
        if self.worker is None:
            with acting_as("lambda"):
                await read_secrets()
            worker = worker_from_env()
            await worker.__aenter__()
            self.worker = worker
        try:
            return await self.worker.invoke(event, context)
        except WorkerDied:
            log.error("the worker died; reopening it on the next invocation")
            worker, self.worker = self.worker, None
            await worker.__aexit__(None, None, None)
            raise


_runtime: Runtime | None = None


def handler(event: dict[str, Any], context: Context) -> dict[str, Any]:
    """Lambda's handler for the pool's SQS event source mappings."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime.invoke(event, context)
