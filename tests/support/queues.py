"""Reading a test pool's queues directly over SQS, to check what is really there."""

from pool.config import PoolConfig
from pool.messages import Received
from pool.sqs import SqsClient


async def drain(config: PoolConfig, *, dlq: bool = False) -> list[Received]:
    """Receive and delete everything in the pool's queues (or DLQs), shard by shard."""
    found: list[Received] = []
    async with SqsClient.from_config(config) as client:
        for shard in range(config.shards):
            name = config.dlq_name(shard) if dlq else config.queue_name(shard)
            url = await client.queue_url(name)
            while batch := await client.receive(
                url, shard, max_messages=10, wait_s=0, visibility_s=30
            ):
                found.extend(batch)
                await client.delete_batch(url, [m.receipt for m in batch])
    return found


async def count(config: PoolConfig, *, dlq: bool = False) -> int:
    """Messages visible, in flight or delayed across the pool's queues (or DLQs)."""
    total = 0
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    async with SqsClient.from_config(config) as client:
        for shard in range(config.shards):
            name = config.dlq_name(shard) if dlq else config.queue_name(shard)
            attrs = await client.attributes(await client.queue_url(name), names)
            total += sum(int(attrs.get(n, 0)) for n in names)
    return total
