"""Sizes: 1 MiB queues, batches within SQS's 1 MiB per call, and S3 behind the pool beyond."""

import asyncio
import dataclasses
import uuid

import pytest
from prometheus_client import CollectorRegistry

from aws.errors import TooLarge
from metrics.pool import PoolMetrics
from pool.blobs import BlobConfig, BlobMissing, BlobStore
from pool.config import PoolConfig
from pool.messages import Outgoing, Received
from pool.pool import QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from tests.support.queues import count


@pytest.fixture
async def bucket(sqs_endpoint: str) -> BlobConfig:
    config = BlobConfig(bucket=f"mp-{uuid.uuid4().hex[:10]}", endpoint_url=sqs_endpoint,
                        region="us-east-1")  # fmt: skip
    async with BlobStore(config) as store:
        await store.provision()
    return config


@pytest.fixture
async def small(pool_config: PoolConfig) -> PoolConfig:
    """A pool whose queues take 2 KiB messages, so a few KiB already go through S3."""
    config = dataclasses.replace(pool_config, max_message_bytes=2048)
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    return config


async def receive_all(pool: QueuePool, expected: int) -> list[Received]:
    found: list[Received] = []
    for _ in range(20):
        for shard in range(pool.shards):
            found += await pool.receive(shard, max_messages=10, wait_s=0)
        if len(found) >= expected:
            return found
        await asyncio.sleep(0.1)
    return found


async def objects(store: BlobStore) -> list[str]:
    listed = await store._call("list_objects_v2", Bucket=store.bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


async def test_a_body_past_the_queue_limit_goes_to_s3_and_comes_back_whole(
    small: PoolConfig, bucket: BlobConfig
) -> None:
    large, plain = "é" * 3000, "fits"
    async with QueuePool(small, PoolMetrics(CollectorRegistry()), blobs=BlobStore(bucket)) as pool:
        await pool.send(Outgoing(body=large, group="g1", dedup_id="big"))
        await pool.send(Outgoing(body=plain, group="g2", dedup_id="small"))
        got = {m.message_id: m for m in await receive_all(pool, 2)}
        [carried] = [m for m in got.values() if m.blob is not None]
        [inline] = [m for m in got.values() if m.blob is None]
        assert len(carried.body) < 200  # the queue holds only the pointer
        assert carried.blob is not None
        assert carried.blob.size == len(large.encode())
        assert await pool.body(carried) == large.encode()
        assert await pool.body(inline) == plain
        assert pool.blobs is not None
        [key] = await objects(pool.blobs)
        assert key.startswith("mailpool/bodies/big.")
        await pool.delete(carried)  # the body goes with its message
        assert await objects(pool.blobs) == []
        with pytest.raises(BlobMissing):
            await pool.body(carried)


async def test_a_replay_with_another_body_never_alters_the_queued_one(
    small: PoolConfig, bucket: BlobConfig
) -> None:
    # Without the state store an Idempotency-Key's replay has the same deduplication id;
    # SQS drops the second message, so the first must keep pointing at its own body.
    first, second = "1" * 3000, "2" * 3000
    async with QueuePool(small, PoolMetrics(CollectorRegistry()), blobs=BlobStore(bucket)) as pool:
        await pool.send(Outgoing(body=first, group="g", dedup_id="order-7"))
        await pool.send(Outgoing(body=second, group="g", dedup_id="order-7"))
        [queued] = await receive_all(pool, 1)
        assert await pool.body(queued) == first.encode()


async def test_without_a_bucket_a_body_past_the_limit_is_too_large_and_not_queued(
    small: PoolConfig,
) -> None:
    async with QueuePool(small, PoolMetrics(CollectorRegistry())) as pool:
        with pytest.raises(TooLarge, match="MAILPOOL_S3_BUCKET"):
            await pool.send(Outgoing(body="x" * 2100, group="g", dedup_id="d"))
        # The limit keeps room for the attributes a move to the DLQ adds.
        assert pool.max_inline_bytes == 2048 - 32
        with pytest.raises(TooLarge):
            await pool.send(Outgoing(body="x" * 2020, group="g", dedup_id="d"))
    assert await count(small) == 0


async def test_a_dead_lettered_large_message_keeps_its_body_for_redrive(
    small: PoolConfig, bucket: BlobConfig
) -> None:
    async with QueuePool(small, PoolMetrics(CollectorRegistry()), blobs=BlobStore(bucket)) as pool:
        await pool.send(Outgoing(body="y" * 5000, group="g", dedup_id="dead"))
        [message] = await receive_all(pool, 1)
        await pool.dead_letter(message, "permanent_failure")
        assert pool.blobs is not None
        assert message.blob is not None
        assert await objects(pool.blobs) == [message.blob.key]
        assert message.blob.key.startswith("mailpool/bodies/dead.")
    assert await count(small, dlq=True) == 1


async def test_queues_take_1_mib_and_batches_stay_within_1_mib_per_call(
    provisioned: PoolConfig,
) -> None:
    async with SqsClient.from_config(provisioned) as client:
        attrs = await client.attributes(await client.queue_url(provisioned.queue_name(0)))
        dlq = await client.attributes(await client.queue_url(provisioned.dlq_name(0)))
    assert attrs["MaximumMessageSize"] == dlq["MaximumMessageSize"] == "1048576"
    registry = CollectorRegistry()
    body = "z" * 400_000  # three of them are more than one SendMessageBatch may carry
    async with QueuePool(provisioned, PoolMetrics(registry)) as pool:
        sent = await asyncio.gather(
            *(pool.send(Outgoing(body=body, group="same", dedup_id=f"d{i}")) for i in range(3))
        )
        assert pool.max_inline_bytes == 1_048_576 - 16_384
        almost = "w" * (pool.max_inline_bytes - 10)
        await pool.send(Outgoing(body=almost, group="other", dedup_id="almost"))
    assert len({s.message_id for s in sent}) == 3
    calls = registry.get_sample_value(
        "mailpool_sqs_calls_total",
        {"action": "SendMessageBatch", "shard": str(sent[0].shard), "outcome": "ok"},
    )
    assert calls is not None
    assert calls >= 2  # split by bytes, not only by count
    assert await count(provisioned) == 4


async def test_provisioning_converges_a_256_kib_queue_to_1_mib(pool_config: PoolConfig) -> None:
    old = dataclasses.replace(pool_config, max_message_bytes=262_144)
    async with SqsClient.from_config(old) as client:
        await provision(client, old)
        await provision(client, pool_config)
        for name in (pool_config.queue_name(1), pool_config.dlq_name(1)):
            attrs = await client.attributes(await client.queue_url(name))
            assert attrs["MaximumMessageSize"] == "1048576"
