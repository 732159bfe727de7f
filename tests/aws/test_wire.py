"""The lean wire answers every hot call as botocore does: the same answers, the same errors,
on moto's server and on the embedded engine; and it checks the answers' integrity (an
attribute digest computed otherwise than SQS computes it would fail every send here)."""

import contextlib
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from botocore.exceptions import ChecksumError, ClientError

from aws.client import AwsClient
from aws.errors import Misconfigured, NoAnswer
from pool.sqs import SqsClient
from state.config import StateConfig
from state.table import ATTRIBUTE_DEFINITIONS, KEY_SCHEMA, StateTable
from tests.support.engines import ThreadedLocalSqs
from tests.support.raw_aws import raw_client
from tests.support.serving import served

#: What differs between two calls by nature: ids, receipts, request ids.
_VARYING = frozenset({"MessageId", "ReceiptHandle", "SequenceNumber", "RequestId", "MD5OfBody"})


@pytest.fixture(scope="module")
def localsqs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("wire")))
    yield server.start()
    server.stop()


@pytest.fixture(params=["moto", "localsqs"])
def endpoint(request: pytest.FixtureRequest, sqs_endpoint: str, localsqs_url: str) -> str:
    return sqs_endpoint if request.param == "moto" else localsqs_url


@contextlib.asynccontextmanager
async def both(service: str, endpoint: str) -> AsyncIterator[tuple[Any, Any]]:
    async with (
        raw_client(service, endpoint, "botocore") as botocore,
        raw_client(service, endpoint, "lean") as lean,
    ):
        yield botocore, lean


def shape(answer: Any, rename: dict[str, str] | None = None) -> Any:
    """``answer`` without what differs by nature between two calls (and with the strings
    of ``rename`` renamed)."""
    rename = rename or {}
    if isinstance(answer, dict):
        return {
            k: "<varies>" if k in _VARYING else shape(v, rename)
            for k, v in answer.items()
            if k != "ResponseMetadata"
        }
    if isinstance(answer, list | tuple):
        return [shape(v, rename) for v in answer]
    return rename.get(answer, answer) if isinstance(answer, str) else answer


async def error_of(call: Any, **params: Any) -> tuple[dict[str, Any], int, dict[str, Any]]:
    with pytest.raises(ClientError) as failed:
        await call(**params)
    response = dict(failed.value.response)
    status = response.pop("ResponseMetadata")["HTTPStatusCode"]
    error = response.pop("Error")
    return error, status, response


async def fifo_queue(sqs: Any) -> str:
    name = f"w{uuid.uuid4().hex[:10]}.fifo"
    attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    return str((await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"])


def entries(tag: str) -> list[dict[str, Any]]:
    return [
        {
            "Id": str(i),
            "MessageBody": f"body {i} é",
            "MessageGroupId": f"g{i % 2}",
            "MessageDeduplicationId": f"{tag}-{i}",
            "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": "reset"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        }
        for i in range(3)
    ]


async def test_sqs_hot_calls_answer_alike(endpoint: str) -> None:
    async with both("sqs", endpoint) as (botocore, lean):
        answers: dict[str, list[Any]] = {}
        for client in (botocore, lean):
            url = await fifo_queue(botocore)
            sent = await client.send_message_batch(QueueUrl=url, Entries=entries("e"))
            got = await client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=30,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
                MessageAttributeNames=["All"],
            )
            receipts = [m["ReceiptHandle"] for m in got["Messages"]]
            changed = await client.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 5}
                    for i, r in enumerate(receipts)
                ],
            )
            deleted = await client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)],
            )
            answers[str(client is lean)] = [sent, got, changed, deleted]
            await botocore.delete_queue(QueueUrl=url)
        assert shape(answers["True"]) == shape(answers["False"])
        assert answers["True"][1]["Messages"][0]["MessageAttributes"]["blob"]["BinaryValue"] == (
            b"\x00\x01"
        )


async def test_sqs_errors_are_alike(endpoint: str) -> None:
    async with both("sqs", endpoint) as (botocore, lean):
        url = await fifo_queue(botocore)
        missing = url.replace(".fifo", "-gone.fifo")
        cases: list[dict[str, Any]] = [
            {"QueueUrl": missing, "Entries": entries("m")},  # no such queue
            {"QueueUrl": url, "Entries": []},  # empty batch
            {"QueueUrl": url, "Entries": entries("d")[:1] * 2},  # the same Id twice
        ]
        for params in cases:
            assert await error_of(lean.send_message_batch, **params) == await error_of(
                botocore.send_message_batch, **params
            )
        gone = {"QueueUrl": missing, "Entries": [{"Id": "0", "ReceiptHandle": "x"}]}
        assert await error_of(lean.delete_message_batch, **gone) == await error_of(
            botocore.delete_message_batch, **gone
        )
        await botocore.delete_queue(QueueUrl=url)


async def test_dynamodb_hot_calls_answer_and_fail_alike(endpoint: str) -> None:
    async with both("dynamodb", endpoint) as (botocore, lean):
        table = f"w{uuid.uuid4().hex[:10]}"
        await botocore.create_table(
            TableName=table,
            KeySchema=KEY_SCHEMA,
            AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
            BillingMode="PAY_PER_REQUEST",
        )

        def item(pk: str, n: int) -> dict[str, Any]:
            return {
                "pk": {"S": pk},
                "sk": {"S": f"s{n}"},
                "n": {"N": str(n)},
                "ok": {"BOOL": True},
                "raw": {"B": b"\x00blob"},
            }

        for client, pk in ((botocore, "b"), (lean, "l")):
            await client.batch_write_item(
                RequestItems={table: [{"PutRequest": {"Item": item(pk, n)}} for n in range(3)]}
            )
        results = {}
        for client, pk in ((botocore, "b"), (lean, "l")):
            key = {"pk": {"S": pk}, "sk": {"S": "s1"}}
            got = await client.get_item(TableName=table, Key=key, ConsistentRead=True)
            many = await client.batch_get_item(
                RequestItems={table: {"Keys": [key], "ConsistentRead": True}}
            )
            queried = await client.query(
                TableName=table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": pk}},
                Limit=2,
            )
            taken = await error_of(
                client.put_item,
                TableName=table,
                Item=item(pk, 1),
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            cancelled = await error_of(
                client.transact_write_items,
                TransactItems=[
                    {
                        "Put": {
                            "TableName": table,
                            "Item": item(pk, n),
                            "ConditionExpression": "attribute_not_exists(pk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                    for n in (1, 7)
                ],
            )
            invalid = await error_of(client.get_item, TableName=table, Key={"pk": {"S": pk}})
            results[pk] = [got, many, queried, taken, cancelled, invalid]
        # The same answers with "b" for "l": the items differ only by their partition key.
        assert shape(results["l"], {"l": "b"}) == shape(results["b"])
        assert results["l"][0]["Item"]["raw"] == {"B": b"\x00blob"}
        assert results["l"][4][2]["CancellationReasons"][0]["Code"] == "ConditionalCheckFailed"
        await botocore.delete_table(TableName=table)


async def test_the_state_table_and_the_pool_choose_their_wire(
    monkeypatch: pytest.MonkeyPatch, sqs_endpoint: str
) -> None:
    config = StateConfig(table="t", endpoint_url=sqs_endpoint, region="us-east-1")
    async with StateTable(config) as table:
        assert table.wire == "lean"
        assert table._lean is not None
    monkeypatch.setenv("MAILPOOL_AWS_WIRE", "botocore")
    async with SqsClient(region="us-east-1", endpoint_url=sqs_endpoint) as sqs:
        assert sqs.wire == "botocore"
        assert sqs._lean is None
    monkeypatch.setenv("MAILPOOL_AWS_WIRE", "fast")
    with pytest.raises(Misconfigured, match="MAILPOOL_AWS_WIRE must be one of lean, botocore"):
        AwsClient(region="us-east-1", endpoint_url=sqs_endpoint)


class Corrupting:
    """Forwards to the engine; alters the integrity fields of chosen answers."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.corrupt = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.target + request.path, data=body, headers=headers) as r,
        ):
            raw = await r.read()
            answer_headers = {
                k: v for k, v in r.headers.items() if k.lower().startswith(("x-amz", "content-t"))
            }
        target = request.headers.get("X-Amz-Target", "")
        if self.corrupt and target.endswith(self.corrupt):
            if b"MD5OfMessageBody" in raw or b"MD5OfBody" in raw:
                raw = raw.replace(b'"MD5OfMessageBody":"', b'"MD5OfMessageBody":"0')
                raw = raw.replace(b'"MD5OfBody":"', b'"MD5OfBody":"0')
            answer_headers["x-amz-crc32"] = "12345"
        return web.Response(status=r.status, body=raw, headers=answer_headers)


@contextlib.asynccontextmanager
async def corrupting(target: str) -> AsyncIterator[tuple[str, Corrupting]]:
    proxy = Corrupting(target)
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", proxy.handle)
    async with served(app) as url:
        yield url, proxy


async def test_altered_digests_and_checksums_fail_the_call(localsqs_url: str) -> None:
    async with corrupting(localsqs_url) as (url, proxy), raw_client("sqs", url, "lean") as sqs:
        queue = await fifo_queue(sqs)
        proxy.corrupt = "SendMessageBatch"
        with pytest.raises(ChecksumError):
            await sqs.send_message_batch(QueueUrl=queue, Entries=entries("c"))
        proxy.corrupt = "ReceiveMessage"
        with pytest.raises(ChecksumError):
            await sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
        proxy.corrupt = ""
        assert len((await sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10))["Messages"])
    async with corrupting(localsqs_url) as (url, proxy):
        async with raw_client("dynamodb", url, "lean") as dynamodb:
            proxy.corrupt = "BatchGetItem"
            with pytest.raises(ChecksumError):
                await dynamodb.batch_get_item(
                    RequestItems={"none": {"Keys": [{"pk": {"S": "a"}, "sk": {"S": "b"}}]}}
                )
        # Through a client, a checksum failure is an answer that cannot be trusted: in doubt.
        async with SqsClient(region="us-east-1", endpoint_url=url) as client:
            queue = await client.queue_url(queue.rsplit("/", 1)[-1])
            proxy.corrupt = "ReceiveMessage"
            with pytest.raises(NoAnswer):
                await client.receive(queue, 0, max_messages=1, wait_s=0, visibility_s=1)


async def test_behind_an_http_proxy_the_hot_calls_stay_on_botocore(
    monkeypatch: pytest.MonkeyPatch, sqs_endpoint: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # never used: nothing is called
    async with SqsClient(region="us-east-1", endpoint_url=sqs_endpoint) as sqs:
        assert sqs._lean is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with SqsClient(region="us-east-1", endpoint_url=sqs_endpoint) as sqs:
        assert sqs._lean is not None
