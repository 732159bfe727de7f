"""The Lambda worker answers SQS events as Lambda builds them, with partial batch responses."""

import dataclasses
import time
from typing import Any

import pytest

from core.events import Event
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import EVENTS, QueuePool
from pool.sqs import SqsClient
from sender.config import SenderConfig
from serverless.records import Shards, record_of
from serverless.source import LocalContext
from serverless.worker import LambdaWorker, WorkerDied
from tests.support.enqueue import enqueue
from tests.support.fake_provider import FakeProvider
from tests.support.queues import count
from tests.support.workers import QUICK

FAST = SenderConfig(wait_time_s=1, backoff_s=30, max_backoff_s=30, metrics_port=0)


def email(to: str) -> dict[str, Any]:
    return {"from": "ana@example.test", "to": to, "text": "t"}


async def batch_of(config: PoolConfig, size: int) -> dict[str, Any]:
    """An SQS event with up to ``size`` messages of shard 0, as Lambda's mapping builds it."""
    async with SqsClient.from_config(config) as client:
        url = await client.queue_url(config.queue_name(0))
        arn = (await client.attributes(url, ["QueueArn"]))["QueueArn"]
        raw: list[dict[str, Any]] = []
        while len(raw) < size:
            got = await client.receive_raw(url, max_messages=size - len(raw), wait_s=1,
                                           visibility_s=30)  # fmt: skip
            if not got:
                break
            raw.extend(got)
    return {"Records": [record_of(message, arn) for message in raw]}


async def depth(config: PoolConfig) -> tuple[int, int]:
    """Messages of shard 0 visible, and in flight."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    async with SqsClient.from_config(config) as client:
        url = await client.queue_url(config.queue_name(0))
        found = await client.attributes(url, names)
    return int(found[names[0]]), int(found[names[1]])


@pytest.fixture
def one_shard(provisioned: PoolConfig) -> PoolConfig:
    """The pool seen as its first shard alone: everything enqueued lands in one queue."""
    return dataclasses.replace(provisioned, shards=1)


async def test_a_failure_returns_its_group_after_it_and_other_groups_carry_on(
    one_shard: PoolConfig,
) -> None:
    await enqueue(
        one_shard,
        [email("slow@example.test"), email("a2@example.test"), email("b1@example.test")],
        group=["a", "a", "b"],
    )
    event = await batch_of(one_shard, 3)
    ids = {r["attributes"]["MessageGroupId"] + str(k): r["messageId"]
           for k, r in enumerate(event["Records"])}  # fmt: skip
    assert sorted(ids) == ["a0", "a1", "b2"]
    provider = FakeProvider(answers={"slow@example.test": "transient"})
    async with LambdaWorker(one_shard, FAST, QUICK, provider) as worker:
        answer = await worker.invoke(event, LocalContext(20, "t"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": ids["a0"]},
                                             {"itemIdentifier": ids["a1"]}]}  # fmt: skip
    assert [e.email.recipients for e in provider.sent] == [["b1@example.test"]]
    # The unstarted one is visible again at once; the failed one hidden for its backoff,
    # the delivered one in flight until the mapping deletes it.
    assert await depth(one_shard) == (1, 2)


async def test_no_send_starts_when_the_invocation_is_nearly_over(one_shard: PoolConfig) -> None:
    await enqueue(one_shard, [email("x@example.test"), email("y@example.test")])
    event = await batch_of(one_shard, 2)
    provider = FakeProvider()
    # 9 s left, under a 10 s margin: time to release both, none to send.
    config = dataclasses.replace(QUICK, margin_s=10.0)
    async with LambdaWorker(one_shard, FAST, config, provider) as worker:
        answer = await worker.invoke(event, LocalContext(9.0, "t"))
    assert len(answer["batchItemFailures"]) == 2
    assert provider.sent == []
    assert await depth(one_shard) == (2, 0)  # back at once, not after the visibility


async def test_sends_still_running_at_the_end_go_back(one_shard: PoolConfig) -> None:
    await enqueue(one_shard, [email("x@example.test")])
    event = await batch_of(one_shard, 1)
    provider = FakeProvider(delay_s=5)
    started = time.monotonic()
    async with LambdaWorker(one_shard, FAST, QUICK, provider) as worker:
        answer = await worker.invoke(event, LocalContext(QUICK.margin_s + 2, "t"))
    assert time.monotonic() - started < 4.5  # answered before the function's timeout
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [
        event["Records"][0]["messageId"]
    ]


async def test_delivered_and_dead_lettered_messages_are_left_to_the_mapping_to_delete(
    one_shard: PoolConfig,
) -> None:
    await enqueue(one_shard, [email("ok@example.test"), email("gone@example.test")])
    event = await batch_of(one_shard, 2)
    provider = FakeProvider(answers={"gone@example.test": "550 5.1.1"})
    async with LambdaWorker(one_shard, FAST, QUICK, provider) as worker:
        answer = await worker.invoke(event, LocalContext(20, "t"))
    assert answer == {"batchItemFailures": []}
    assert await count(one_shard) == 2  # still in flight: the mapping deletes them
    assert await count(one_shard, dlq=True) == 1  # the refused one's copy is in the DLQ
    async with QueuePool(one_shard, PoolMetrics(process_registry())) as pool:
        got = await pool.receive(EVENTS, max_messages=10, wait_s=1, visibility_s=0)
    assert sorted(Event.decode(m.body).type for m in got) == ["email.bounced", "email.sent"]


async def test_a_record_from_another_queue_goes_back(one_shard: PoolConfig) -> None:
    await enqueue(one_shard, [email("x@example.test")])
    event = await batch_of(one_shard, 1)
    stranger = dict(event["Records"][0], messageId="m-2",
                    eventSourceARN="arn:aws:sqs:us-east-1:123456789012:other.fifo")  # fmt: skip
    event["Records"].append(stranger)
    async with LambdaWorker(one_shard, FAST, QUICK, FakeProvider()) as worker:
        answer = await worker.invoke(event, LocalContext(20, "t"))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}


async def test_a_worker_whose_pool_died_refuses_the_invocation(one_shard: PoolConfig) -> None:
    async with LambdaWorker(one_shard, FAST, QUICK, FakeProvider()) as worker:
        worker.health.failure = "flusher"
        with pytest.raises(WorkerDied):
            await worker.invoke({"Records": []}, LocalContext(20, "t"))


def test_the_documented_fifo_record_reads_as_the_sender_reads_a_message() -> None:
    # The Lambda developer guide's SQS FIFO event record, with mailpool's queue name.
    record = {
        "messageId": "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5",
        "receiptHandle": "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...",
        "body": "Test message.",
        "attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1573251510774",
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": "1",
            "SenderId": "AIDAIO23YVJENQZJOL4VO",
            "MessageDeduplicationId": "1",
            "ApproximateFirstReceiveTimestamp": "1573251510774",
        },
        "messageAttributes": {
            "x-mailpool": {
                "stringValue": "v",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
        },
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:mailpool-3.fifo",
        "awsRegion": "us-east-2",
    }
    message = Shards(PoolConfig(shards=4)).received(record)
    assert (message.shard, message.group, message.receive_count) == (3, "1", 2)
    assert message.sent_at == 1573251510.774
    assert message.attributes == {"x-mailpool": "v"}
    assert message.blob is None


async def test_an_envelope_that_cannot_be_read_ends_failed_in_the_dlq(
    one_shard: PoolConfig,
) -> None:
    async with QueuePool(one_shard, PoolMetrics(process_registry())) as pool:
        broken = '{"v": 1, "id": "e-broken", "email": "not an email"}'
        await pool.send(Outgoing(body=broken, group="g", dedup_id="e-broken"))
        await pool.send(Outgoing(body="not json at all", group="h", dedup_id="x-1"))
    event = await batch_of(one_shard, 2)
    provider = FakeProvider()
    async with LambdaWorker(one_shard, FAST, QUICK, provider) as worker:
        answer = await worker.invoke(event, LocalContext(20, "t"))
    assert answer == {"batchItemFailures": []}  # settled: both copied to the DLQ
    assert provider.sent == []
    assert await count(one_shard, dlq=True) == 2
    async with QueuePool(one_shard, PoolMetrics(process_registry())) as pool:
        got = await pool.receive(EVENTS, max_messages=10, wait_s=1, visibility_s=0)
    # The mailpool email ends in email.failed; the stranger has no producer to tell.
    assert [(e.type, e.email_id, e.terminal) for e in map(Event.decode, (m.body for m in got))
            ] == [("email.failed", "e-broken", True)]  # fmt: skip
