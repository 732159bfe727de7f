"""Creating the pool's queues: per shard a FIFO queue, its FIFO DLQ and the redrive policy;
the events queue (standard) and its DLQ."""

import asyncio
from dataclasses import dataclass

import orjson

from aws.errors import AwsError, Rejected
from pool.config import PoolConfig
from pool.sqs import SqsClient


@dataclass(frozen=True, slots=True)
class ProvisionedShard:
    """URLs of one shard's queue and dead-letter queue."""

    shard: int
    url: str
    dlq_url: str


def dlq_attributes(config: PoolConfig) -> dict[str, str]:
    """Attributes of a shard's dead-letter queue."""
    return {
        **({"FifoQueue": "true"} if config.fifo else {}),
        "MessageRetentionPeriod": str(config.dlq_retention_s),
        "MaximumMessageSize": str(config.max_message_bytes),
        "SqsManagedSseEnabled": "true",
    }


def queue_attributes(config: PoolConfig, dlq_arn: str) -> dict[str, str]:
    """Attributes of a shard's queue, with the redrive policy to ``dlq_arn``."""
    fifo = {
        "FifoQueue": "true",
        # Deduplication is by explicit ID (the mailpool id / Idempotency-Key), never content.
        "ContentBasedDeduplication": "false",
    }
    return {
        **(fifo if config.fifo else {}),
        "VisibilityTimeout": str(config.visibility_timeout_s),
        "MessageRetentionPeriod": str(config.retention_s),
        "MaximumMessageSize": str(config.max_message_bytes),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": orjson.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": config.max_receive_count}
        ).decode(),
    }


async def _ensure(client: SqsClient, name: str, attributes: dict[str, str]) -> str:
    """Create ``name``, or bring an existing queue's mutable attributes up to date."""
    try:
        return await client.create_queue(name, attributes)
    except Rejected as exc:
        if exc.code not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
    url = await client.queue_url(name)
    mutable = {k: v for k, v in attributes.items() if k not in ("FifoQueue",)}
    await client.set_attributes(url, mutable)
    return url


async def provision_shard(client: SqsClient, config: PoolConfig, shard: int) -> ProvisionedShard:
    """Create (or update) shard ``shard``'s DLQ, then its queue pointing at that DLQ."""
    dlq_url = await _ensure(client, config.dlq_name(shard), dlq_attributes(config))
    arn = (await client.attributes(dlq_url, ["QueueArn"]))["QueueArn"]
    url = await _ensure(client, config.queue_name(shard), queue_attributes(config, arn))
    return ProvisionedShard(shard=shard, url=url, dlq_url=dlq_url)


def events_attributes(config: PoolConfig, dlq_arn: str | None) -> dict[str, str]:
    """Attributes of the events queue (with its redrive policy) or, without ``dlq_arn``,
    of its dead-letter queue."""
    attributes = {
        "MessageRetentionPeriod": str(config.dlq_retention_s),
        "MaximumMessageSize": str(config.max_message_bytes),
        "SqsManagedSseEnabled": "true",
    }
    if dlq_arn is not None:
        attributes["VisibilityTimeout"] = "60"
        attributes["RedrivePolicy"] = orjson.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": config.events_max_receive_count}
        ).decode()
    return attributes


async def provision_events(
    client: SqsClient, config: PoolConfig, name: str, dlq_name: str
) -> tuple[str, str]:
    """Create (or update) a standard events queue and its DLQ; their URLs."""
    dlq_url = await _ensure(client, dlq_name, events_attributes(config, None))
    arn = (await client.attributes(dlq_url, ["QueueArn"]))["QueueArn"]
    url = await _ensure(client, name, events_attributes(config, arn))
    return url, dlq_url


async def provision(client: SqsClient, config: PoolConfig) -> list[ProvisionedShard]:
    """Create the whole pool (and the events queues); safe to run again (it converges the
    attributes)."""
    if config.events:
        await provision_events(client, config, config.events_name(), config.events_dlq_name())
    if config.ses_feedback:
        await provision_events(
            client, config, config.ses_events_name(), config.ses_events_dlq_name()
        )
    return list(
        await asyncio.gather(*(provision_shard(client, config, k) for k in range(config.shards)))
    )


async def delete_pool(client: SqsClient, config: PoolConfig) -> int:
    """Delete every queue of the pool that exists; how many were deleted."""
    deleted = 0
    names = [n for k in range(config.shards) for n in (config.queue_name(k), config.dlq_name(k))]
    standard = [
        config.events_name(),
        config.events_dlq_name(),
        config.ses_events_name(),
        config.ses_events_dlq_name(),
    ]
    for name in [*names, *standard]:
        try:
            url = await client.queue_url(name)
        except AwsError:
            continue
        await client.delete_queue(url)
        deleted += 1
    return deleted
