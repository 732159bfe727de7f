"""The two faces of the delivery code, for tests that run through either: the sender's
receive loops, and the Lambda worker invoked by a local event source."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.service import BackgroundService
from pool.config import PoolConfig
from sender.config import SenderConfig
from sender.providers.base import Provider
from sender.service import SenderService
from serverless.config import LambdaConfig
from serverless.service import LocalLambdaService
from serverless.worker import LambdaWorker

WORKERS = ("sender", "lambda")
QUICK = LambdaConfig(margin_s=2.0, timeout_s=20.0, max_concurrency=4)


@pytest.fixture(params=WORKERS)
def worker(request: pytest.FixtureRequest) -> str:
    """Which face of the delivery code a test runs through."""
    return str(request.param)


@contextlib.asynccontextmanager
async def delivering(
    kind: str,
    pool: PoolConfig,
    sender: SenderConfig,
    provider: Provider,
    config: LambdaConfig = QUICK,
    claims: bool | None = None,
    **kw: Any,
) -> AsyncIterator[BackgroundService]:
    """``kind`` ("sender" or "lambda") delivering from ``pool`` while inside; ``kw`` as
    SenderService takes them (keyring, blobs, state); ``claims`` as LambdaWorker does."""
    service: BackgroundService
    if kind == "lambda":
        worker = LambdaWorker(pool, sender, config, provider, claims=claims, **kw)
        service = LocalLambdaService(worker, pool, wait_s=sender.wait_time_s)
    else:
        service = SenderService(pool, sender, provider, **kw)
    async with service:
        yield service
