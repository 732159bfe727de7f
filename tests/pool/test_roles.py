"""Each process opens the batching flushers of its own role and no others: intake sends,
the sender and the Lambda worker settle, webhooks settle the events queues; every one
publishes events."""

import pytest

from intake.config import IntakeConfig
from intake.service import IntakeService
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import EVENTS, QueuePool
from pool.queues import NotInRole, Role
from sender.config import SenderConfig
from sender.service import SenderService
from tests.support.fake_provider import FakeProvider
from webhooks.config import WebhooksConfig
from webhooks.service import WebhooksService

SETTLING = {"DeleteMessageBatch", "ChangeMessageVisibilityBatch", "SendMessageBatch.dlq"}


def actions(pool: QueuePool, shards: range) -> set[str]:
    return {action for shard, action in pool.flushing() if shard in shards}


async def test_intake_opens_no_consumer_flusher(provisioned: PoolConfig) -> None:
    async with IntakeService(provisioned, IntakeConfig(port=0)) as intake:
        pool = intake.pool
        assert actions(pool, range(pool.shards)) == {"SendMessageBatch"}
        assert actions(pool, range(EVENTS, EVENTS + 1)) == {"SendMessageBatch"}


async def test_the_sender_opens_no_producer_flusher(provisioned: PoolConfig) -> None:
    config = SenderConfig(metrics_port=0)
    async with SenderService(provisioned, config, FakeProvider()) as sender:
        pool = sender.pool
        assert actions(pool, range(pool.shards)) == SETTLING
        assert actions(pool, range(EVENTS, EVENTS + 1)) == {"SendMessageBatch"}  # it publishes
        with pytest.raises(NotInRole):
            await pool.send(Outgoing(body="x", group="g", dedup_id="d"))


async def test_webhooks_settle_only_the_events_queue(provisioned: PoolConfig) -> None:
    async with WebhooksService(provisioned, WebhooksConfig(metrics_port=0), []) as hooks:
        pool = hooks.pool
        assert actions(pool, range(pool.shards)) == set()
        assert actions(pool, range(EVENTS, EVENTS + 1)) == SETTLING | {"SendMessageBatch"}


async def test_a_pool_for_everything_opens_every_flusher(provisioned: PoolConfig) -> None:
    async with QueuePool(provisioned, PoolMetrics(process_registry()), role=Role.ALL) as pool:
        assert actions(pool, range(pool.shards)) == SETTLING | {"SendMessageBatch"}
