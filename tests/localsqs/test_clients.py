"""localsqs with other clients and options: boto3, the AWS CLI, the query protocol, quotas."""

import asyncio
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import aiohttp
import boto3
import orjson
import pytest

from aws.errors import Throttled
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.provision import provision
from pool.sqs import SqsClient
from tests.support.engines import ThreadedLocalSqs


@pytest.fixture(scope="module")
def localsqs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("clients")))
    yield server.start()
    server.stop()


def test_boto3_round_trip(localsqs: str) -> None:
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=localsqs)
    url = sqs.create_queue(QueueName="boto3.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="from boto3", MessageGroupId="g",
                     MessageDeduplicationId="1")  # fmt: skip
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert message["Body"] == "from boto3"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_boto3_dynamodb_round_trip(localsqs: str) -> None:
    """The resource layer (its own serialisation of types) on the embedded DynamoDB."""
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1", endpoint_url=localsqs)
    table = dynamodb.create_table(
        TableName="boto3-table",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table.put_item(Item={"pk": "a", "n": 3, "tags": {"x", "y"}, "doc": {"k": ["v", 1]}})
    item = table.get_item(Key={"pk": "a"})["Item"]
    assert item == {"pk": "a", "n": 3, "tags": {"x", "y"}, "doc": {"k": ["v", 1]}}


def aws_cli() -> str | None:
    return os.environ.get("MAILPOOL_AWS_CLI") or shutil.which("aws")


@pytest.mark.skipif(aws_cli() is None, reason="no AWS CLI (make test installs one)")
def test_aws_cli_round_trip(localsqs: str) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}

    def aws(*args: str) -> Any:
        out = subprocess.run(
            [str(aws_cli()), "sqs", *args, "--output", "json", "--endpoint-url", localsqs],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        return orjson.loads(out) if out.strip() else {}

    url = aws("create-queue", "--queue-name", "cli")["QueueUrl"]
    aws("send-message", "--queue-url", url, "--message-body", "from the cli")
    [message] = aws("receive-message", "--queue-url", url)["Messages"]
    assert message["Body"] == "from the cli"
    assert url in aws("list-queues")["QueueUrls"]


async def test_the_query_protocol_gets_a_clear_error(localsqs: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(localsqs, data={"Action": "ListQueues", "Version": "2012-11-05"}) as response,
    ):
        body = await response.json(content_type=None)
    assert response.status == 400
    assert body["__type"].endswith("#InvalidAction")
    assert "JSON protocol" in body["message"]


async def test_invalid_characters_fail_their_batch_entry_alone(localsqs: str) -> None:
    config = PoolConfig(prefix="chars", shards=1, endpoint_url=localsqs, region="us-east-1")
    async with SqsClient.from_config(config) as client:
        [shard] = await provision(client, config)
        results = await client.send_batch(shard.url, [
            Outgoing(body="fine", group="g", dedup_id="1"),
            Outgoing(body="nul \x00 inside", group="g", dedup_id="2"),
        ])  # fmt: skip
    assert isinstance(results[0], str)
    assert getattr(results[1], "code", None) == "InvalidMessageContents"


async def test_throttling_answers_like_sqs_at_its_quota(tmp_path: pathlib.Path) -> None:
    server = ThreadedLocalSqs(tmp_path, throttle=5)
    url = await asyncio.to_thread(server.start)
    try:
        config = PoolConfig(prefix="quota", shards=1, endpoint_url=url, region="us-east-1")
        async with SqsClient.from_config(config) as client:
            [shard] = await provision(client, config)
            outcomes = []
            for _ in range(12):
                try:
                    await client.receive(shard.url, 0, max_messages=1, wait_s=0, visibility_s=30)
                    outcomes.append("ok")
                except Throttled:
                    outcomes.append("throttled")
            # Other actions and other queues have quotas of their own.
            await client.attributes(shard.url, ["QueueArn"])
    finally:
        await asyncio.to_thread(server.stop)
    assert outcomes[:5] == ["ok"] * 5
    assert "throttled" in outcomes[5:]


@pytest.mark.skipif(aws_cli() is None, reason="no AWS CLI (make test installs one)")
def test_aws_cli_dynamodb_round_trip(localsqs: str) -> None:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}

    def aws(*args: str) -> Any:
        out = subprocess.run(
            [str(aws_cli()), "dynamodb", *args, "--output", "json", "--endpoint-url", localsqs],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        return orjson.loads(out) if out.strip() else {}

    aws("create-table", "--table-name", "cli-table", "--billing-mode", "PAY_PER_REQUEST",
        "--key-schema", "AttributeName=pk,KeyType=HASH",
        "--attribute-definitions", "AttributeName=pk,AttributeType=S")  # fmt: skip
    aws("put-item", "--table-name", "cli-table", "--item", '{"pk": {"S": "a"}, "v": {"N": "1"}}')
    got = aws("get-item", "--table-name", "cli-table", "--key", '{"pk": {"S": "a"}}')
    assert got["Item"] == {"pk": {"S": "a"}, "v": {"N": "1"}}
    assert "cli-table" in aws("list-tables")["TableNames"]
