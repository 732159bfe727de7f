"""The pool against moto's SQS server over HTTP: provisioning, send, receive, settle."""

import asyncio
import dataclasses

import orjson
import pytest
from prometheus_client import CollectorRegistry

from aws.errors import QueueMissing, Unavailable
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import REASON_ATTRIBUTE, SOURCE_ATTRIBUTE, QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from tests.support.proxy import FaultProxy


def message(i: int, group: str = "g") -> Outgoing:
    return Outgoing(body=f"body-{i}", group=group, dedup_id=f"d-{i}-{group}")


async def test_provisioning_creates_fifo_queues_with_dlq_redrive_and_encryption(
    provisioned: PoolConfig,
) -> None:
    async with SqsClient.from_config(provisioned) as client:
        for shard in range(provisioned.shards):
            url = await client.queue_url(provisioned.queue_name(shard))
            dlq_url = await client.queue_url(provisioned.dlq_name(shard))
            attrs = await client.attributes(url)
            dlq_arn = (await client.attributes(dlq_url))["QueueArn"]
            assert attrs["FifoQueue"] == "true"
            assert attrs["SqsManagedSseEnabled"] == "true"
            assert attrs["VisibilityTimeout"] == str(provisioned.visibility_timeout_s)
            redrive = orjson.loads(attrs["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"] == dlq_arn
            assert int(redrive["maxReceiveCount"]) == provisioned.max_receive_count


async def test_provisioning_again_converges_changed_attributes(provisioned: PoolConfig) -> None:
    changed = dataclasses.replace(provisioned, visibility_timeout_s=45, max_receive_count=3)
    async with SqsClient.from_config(changed) as client:
        await provision(client, changed)
        attrs = await client.attributes(await client.queue_url(changed.queue_name(0)))
    assert attrs["VisibilityTimeout"] == "45"
    assert int(orjson.loads(attrs["RedrivePolicy"])["maxReceiveCount"]) == 3


async def test_opening_a_pool_whose_queues_do_not_exist_fails_clearly(
    pool_config: PoolConfig, pool_metrics: PoolMetrics
) -> None:
    with pytest.raises(QueueMissing):
        async with QueuePool(pool_config, pool_metrics):
            pass


async def test_messages_route_by_group_and_come_back_in_group_order(
    provisioned: PoolConfig, pool_metrics: PoolMetrics
) -> None:
    async with QueuePool(provisioned, pool_metrics) as pool:
        for i in range(5):
            sent = await pool.send(message(i, "alpha"))
            assert sent.shard == pool.shard_of("alpha")
        shard = pool.shard_of("alpha")
        got = await pool.receive(shard, max_messages=10, wait_s=1)
        assert [m.body for m in got] == [f"body-{i}" for i in range(5)]
        assert all(m.group == "alpha" and m.receive_count == 1 for m in got)
        assert all(m.sent_at > 0 for m in got)
        await asyncio.gather(*(pool.delete(m) for m in got))
        depth = await pool.depth()
    assert sum(d.visible + d.in_flight for d in depth) == 0


async def test_concurrent_sends_coalesce_into_batch_calls(
    provisioned: PoolConfig, registry: CollectorRegistry
) -> None:
    config = dataclasses.replace(provisioned, shards=1, send_linger_s=0.05)
    async with QueuePool(config, PoolMetrics(registry)) as pool:
        await asyncio.gather(*(pool.send(message(i, f"g{i}")) for i in range(10)))
    labels = {"action": "SendMessageBatch"}
    assert registry.get_sample_value("mailpool_sqs_batch_entries_count", labels) == 1
    assert registry.get_sample_value("mailpool_sqs_batch_entries_sum", labels) == 10
    assert registry.get_sample_value("mailpool_messages_enqueued_total", {"shard": "0"}) == 10


async def test_same_deduplication_id_is_enqueued_once(
    provisioned: PoolConfig, pool_metrics: PoolMetrics
) -> None:
    async with QueuePool(provisioned, pool_metrics) as pool:
        first = await pool.send(Outgoing(body="one", group="g", dedup_id="same"))
        again = await pool.send(Outgoing(body="two", group="g", dedup_id="same"))
        assert again.shard == first.shard
        got = await pool.receive(first.shard, max_messages=10, wait_s=1)
    assert [m.body for m in got] == ["one"]


async def test_visibility_release_makes_a_message_receivable_again(
    provisioned: PoolConfig, pool_metrics: PoolMetrics
) -> None:
    async with QueuePool(provisioned, pool_metrics) as pool:
        sent = await pool.send(message(1))
        [first] = await pool.receive(sent.shard, max_messages=1, wait_s=1)
        assert await pool.receive(sent.shard, max_messages=1, wait_s=0) == []
        await pool.set_visibility(first, 0)
        [second] = await pool.receive(sent.shard, max_messages=1, wait_s=1)
    assert second.message_id == first.message_id
    assert second.receive_count == 2


async def test_dead_letter_moves_the_message_with_its_reason(
    provisioned: PoolConfig, pool_metrics: PoolMetrics
) -> None:
    async with QueuePool(provisioned, pool_metrics) as pool:
        sent = await pool.send(message(1))
        [got] = await pool.receive(sent.shard, max_messages=1, wait_s=1)
        await pool.dead_letter(got, "smtp_550")
        assert await pool.receive(sent.shard, max_messages=1, wait_s=0) == []
    async with SqsClient.from_config(provisioned) as client:
        dlq = await client.queue_url(provisioned.dlq_name(sent.shard))
        [dead] = await client.receive(dlq, sent.shard, max_messages=1, wait_s=1, visibility_s=30)
    assert dead.body == "body-1"
    assert dead.attributes[REASON_ATTRIBUTE] == "smtp_550"
    assert dead.attributes[SOURCE_ATTRIBUTE] == str(sent.shard)


async def test_unreachable_sqs_fails_sends_with_unavailable_by_the_deadline(
    provisioned: PoolConfig, sqs_endpoint: str, pool_metrics: PoolMetrics
) -> None:
    host, port = sqs_endpoint.removeprefix("http://").split(":")
    async with FaultProxy(host, int(port)) as proxy:
        config = dataclasses.replace(provisioned, endpoint_url=proxy.url, send_deadline_s=1.0)
        async with QueuePool(config, pool_metrics) as pool:
            for mode in ("reset", "blackhole"):
                proxy.set_mode(mode)  # type: ignore[arg-type]
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(Unavailable):
                    await pool.send(message(1))
                assert loop.time() - started < 2.5
            proxy.set_mode("pass")
            assert (await pool.send(message(2))).message_id
