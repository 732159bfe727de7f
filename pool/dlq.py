"""Dead-letter queue tooling: list, redrive to the source shard, purge.

Listing receives each DLQ's messages under a short visibility timeout and releases them
afterwards, so it changes nothing but their receive count. In a FIFO DLQ a group's later
messages stay hidden behind its earlier ones while those are listed (SQS's group rule),
so a listing shows at most ten messages of a group at a time.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from pool.config import PoolConfig
from pool.messages import Outgoing, Received
from pool.pool import REASON_ATTRIBUTE, SOURCE_ATTRIBUTE
from pool.sqs import SqsClient

#: How long listed messages stay hidden while a listing walks the queue.
LIST_VISIBILITY_S = 30


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered message, as a listing shows it (no content)."""

    shard: int
    message_id: str
    group: str
    reason: str
    receive_count: int
    sent_at: float
    body: str


async def _walk(
    client: SqsClient, url: str, shard: int, limit: int
) -> AsyncIterator[list[Received]]:
    seen = 0
    while seen < limit:
        batch = await client.receive(
            url,
            shard,
            max_messages=min(10, limit - seen),
            wait_s=0,
            visibility_s=LIST_VISIBILITY_S,
        )
        if not batch:
            return
        seen += len(batch)
        yield batch


def _dead_letter(message: Received) -> DeadLetter:
    return DeadLetter(
        shard=message.shard,
        message_id=message.message_id,
        group=message.group,
        reason=message.attributes.get(REASON_ATTRIBUTE, "max_receive_count"),
        receive_count=message.receive_count,
        sent_at=message.sent_at,
        body=message.body,
    )


async def list_dead_letters(
    client: SqsClient, config: PoolConfig, limit: int = 1000
) -> list[DeadLetter]:
    """Up to ``limit`` dead-lettered messages per shard; they are released afterwards."""
    found: list[DeadLetter] = []
    for shard in range(config.shards):
        url = await client.queue_url(config.dlq_name(shard))
        held: list[Received] = []
        async for batch in _walk(client, url, shard, limit):
            held.extend(batch)
        found.extend(_dead_letter(m) for m in held)
        for start in range(0, len(held), 10):
            chunk = held[start : start + 10]
            await client.change_visibility_batch(url, [(m.receipt, 0) for m in chunk])
    return found


class _Pace:
    """At most ``rate`` messages per second (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self._interval = 1 / rate if rate > 0 else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self._interval


async def redrive(
    client: SqsClient,
    config: PoolConfig,
    *,
    rate: float = 50.0,
    limit: int = 1_000_000,
    on_moved: Callable[[DeadLetter], None] = lambda _: None,
) -> int:
    """Move dead-lettered messages back to the shard they came from; how many moved.

    Messages go back one at a time in the order the DLQ yields them, so a group keeps its
    order. Each gets a fresh deduplication ID: its original one may still be inside the
    source queue's 5-minute window, which would drop it silently.
    """
    pace = _Pace(rate)
    moved = 0
    for shard in range(config.shards):
        dlq = await client.queue_url(config.dlq_name(shard))
        async for batch in _walk(client, dlq, shard, limit - moved):
            for message in batch:
                source = int(message.attributes.get(SOURCE_ATTRIBUTE, shard))
                target = await client.queue_url(config.queue_name(source))
                await pace.wait()
                attributes = {
                    k: v
                    for k, v in message.attributes.items()
                    if k not in (REASON_ATTRIBUTE, SOURCE_ATTRIBUTE)
                }
                [outcome] = await client.send_batch(
                    target,
                    [
                        Outgoing(
                            body=message.body,
                            group=message.group or message.message_id,
                            dedup_id=f"redrive-{message.message_id}",
                            attributes=attributes,
                        )
                    ],
                )
                if isinstance(outcome, Exception):
                    raise outcome
                [deleted] = await client.delete_batch(dlq, [message.receipt])
                if deleted is not None:
                    raise deleted
                moved += 1
                on_moved(_dead_letter(message))
    return moved


async def purge_dead_letters(client: SqsClient, config: PoolConfig) -> None:
    """Delete every message of every shard's DLQ (SQS allows one purge a minute per queue)."""
    for shard in range(config.shards):
        url = await client.queue_url(config.dlq_name(shard))
        await client.purge(url)
