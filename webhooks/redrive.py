"""``mailpool webhooks redrive``: dead-lettered events back to the events queue, each for the
endpoint it was given up on (or every endpoint, for an event that never fanned out), with
a fresh retry schedule."""

from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import REASON_ATTRIBUTE, SOURCE_ATTRIBUTE
from pool.sqs import SqsClient
from webhooks.dispatcher import ATTEMPT_ATTRIBUTE, DUE_ATTRIBUTE

_DROPPED = frozenset({REASON_ATTRIBUTE, SOURCE_ATTRIBUTE, ATTEMPT_ATTRIBUTE, DUE_ATTRIBUTE})


async def redrive_events(client: SqsClient, config: PoolConfig, limit: int = 1_000_000) -> int:
    """Move up to ``limit`` events from the events DLQ back; how many moved."""
    dlq = await client.queue_url(config.events_dlq_name())
    target = await client.queue_url(config.events_name())
    moved = 0
    while moved < limit:
        batch = await client.receive(
            dlq, -1, max_messages=min(10, limit - moved), wait_s=1, visibility_s=30
        )
        if not batch:
            return moved
        copies = [
            Outgoing(
                body=m.body,
                attributes={k: v for k, v in m.attributes.items() if k not in _DROPPED},
            )
            for m in batch
        ]
        for outcome in await client.send_batch(target, copies):
            if isinstance(outcome, Exception):
                raise outcome
        for deleted in await client.delete_batch(dlq, [m.receipt for m in batch]):
            if deleted is not None:
                raise deleted
        moved += len(batch)
    return moved
