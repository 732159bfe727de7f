"""The engines the conformance suite runs on: moto, localsqs, and any opted-in endpoint."""

import contextlib
import os
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from aws.wire import WIRES
from tests.support.engines import ThreadedLocalSqs
from tests.support.raw_aws import raw_client

#: Set to an SQS endpoint (real AWS, LocalStack, ...) to run the suite against it too.
EXTERNAL = os.environ.get("MAILPOOL_CONFORMANCE_ENDPOINT")
ENGINES = ["moto", "localsqs", *(["external"] if EXTERNAL else [])]


@pytest.fixture(scope="session")
def localsqs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """localsqs on a free port, with a fresh data directory, for the whole session."""
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("localsqs")))
    yield server.start()
    server.stop()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, sqs_endpoint: str, localsqs_endpoint: str) -> str:
    """Which engine this run of a test talks to."""
    return str(request.param)


@pytest.fixture
def endpoint(engine: str, sqs_endpoint: str, localsqs_endpoint: str) -> str | None:
    """The engine's endpoint URL (None: the standard AWS chain, for ``external``)."""
    return {"moto": sqs_endpoint, "localsqs": localsqs_endpoint}.get(engine, EXTERNAL)


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    """The wire the hot calls go over: mailpool's lean wire, or aiobotocore itself."""
    return str(request.param)


@pytest.fixture
async def sqs(endpoint: str | None, wire: str) -> AsyncIterator[Any]:
    """A raw SQS client for the engine under test, its hot calls on ``wire``."""
    async with raw_client("sqs", endpoint, wire) as client:
        yield client


@pytest.fixture
def name() -> str:
    """A queue name no other test uses."""
    return f"c{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def cleanup(sqs: Any) -> AsyncIterator[list[str]]:
    """Queue URLs to delete after the test."""
    urls: list[str] = []
    yield urls
    for url in urls:
        with contextlib.suppress(ClientError):  # a test may have deleted it already
            await sqs.delete_queue(QueueUrl=url)


@pytest.fixture
async def dynamodb(endpoint: str | None, wire: str) -> AsyncIterator[Any]:
    """A raw DynamoDB client for the engine under test, its hot calls on ``wire``."""
    async with raw_client("dynamodb", endpoint, wire) as client:
        yield client


@pytest.fixture
async def table(dynamodb: Any, name: str) -> AsyncIterator[str]:
    """A table (pk, sk: strings; TTL on ``expires``) no other test uses; deleted afterwards."""
    await dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    with contextlib.suppress(ClientError):
        await dynamodb.delete_table(TableName=name)
