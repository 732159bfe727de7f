"""A pool and a state table on a DynamoDB engine: moto's server or the embedded engine."""

import dataclasses
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from pool.config import PoolConfig
from pool.provision import delete_pool, provision
from pool.sqs import SqsClient
from state.config import StateConfig
from state.table import StateTable
from tests.support import workers
from tests.support.engines import ThreadedLocalSqs

SECRET = b"s" * 32


@pytest.fixture(scope="session")
def engine_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded engine (SQS and DynamoDB) on a free port, for the whole session."""
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("state-engine")))
    yield server.start()
    server.stop()


@pytest.fixture(params=["localsqs", "moto"])
def dynamo_endpoint(request: pytest.FixtureRequest, engine_endpoint: str, sqs_endpoint: str) -> str:
    """The endpoint of each DynamoDB implementation in turn."""
    return engine_endpoint if request.param == "localsqs" else sqs_endpoint


@pytest.fixture
async def state_config(dynamo_endpoint: str) -> AsyncIterator[StateConfig]:
    """A provisioned state table of its own; dropped afterwards."""
    config = StateConfig(
        enabled=True,
        table=f"t{uuid.uuid4().hex[:10]}-state",
        endpoint_url=dynamo_endpoint,
        region="us-east-1",
        secret=SECRET,
        public_url="https://mail.example.test",
        suppression_cache_s=0.0,
    )
    async with StateTable(config) as table:
        assert await table.provision() == "created"
    yield config
    async with StateTable(config) as table:
        await table.drop()


@pytest.fixture
async def engine_stack(engine_endpoint: str) -> AsyncIterator[tuple[PoolConfig, StateConfig]]:
    """A pool and a state table, both on the embedded engine (fast enough for flows)."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    pool = PoolConfig(prefix=prefix, shards=2, endpoint_url=engine_endpoint,
                      region="us-east-1", send_deadline_s=3.0)  # fmt: skip
    state = StateConfig(enabled=True, table=f"{prefix}-state", endpoint_url=engine_endpoint,
                        region="us-east-1", secret=SECRET, suppression_cache_s=0.0,
                        public_url="http://127.0.0.1:1")  # fmt: skip
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    async with StateTable(state) as table:
        await table.provision()
    yield pool, state
    async with SqsClient.from_config(pool) as client:
        await delete_pool(client, pool)
    async with StateTable(state) as table:
        await table.drop()


def with_endpoint(config: StateConfig, endpoint: str) -> StateConfig:
    """``config`` on another endpoint."""
    return dataclasses.replace(config, endpoint_url=endpoint)


#: Which face of the delivery code a test runs through (the sender, or the Lambda worker).
worker = workers.worker
