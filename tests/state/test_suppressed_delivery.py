"""Suppressed recipients at delivery, through both faces of the delivery code (the sender,
and the Lambda worker under a local event source), on the embedded engine."""

import time

from core.events import Event
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.pool import EVENTS, QueuePool
from sender.config import SenderConfig
from state.config import StateConfig
from state.store import State
from state.suppressions import Suppression
from tests.support.enqueue import enqueue
from tests.support.fake_provider import FakeProvider
from tests.support.queues import count
from tests.support.waiting import until
from tests.support.workers import delivering

FAST = SenderConfig(wait_time_s=1, backoff_s=1, max_backoff_s=1, metrics_port=0)


async def events_of(pool: PoolConfig) -> dict[str, list[tuple[str, bool, list[str]]]]:
    """Each email's events: (type, terminal, addresses), by email id."""
    found: dict[str, list[tuple[str, bool, list[str]]]] = {}
    async with QueuePool(pool, PoolMetrics(process_registry())) as queues:
        while batch := await queues.receive(EVENTS, max_messages=10, wait_s=0, visibility_s=30):
            for message in batch:
                e = Event.decode(message.body)
                found.setdefault(e.email_id, []).append(
                    (e.type, e.terminal, [r.address for r in e.recipients])
                )
                await queues.delete(message)
    return found


async def test_a_suppressed_recipient_is_skipped_and_an_all_suppressed_email_ends_there(
    engine_stack: tuple[PoolConfig, StateConfig], worker: str
) -> None:
    pool, state = engine_stack
    async with State(state) as store:
        gone = Suppression("gone@example.test", "hard_bounce", time.time())
        await store.suppressions.add("default", gone)
    alone, mixed = await enqueue(pool, [
        {"from": "ana@example.test", "to": "gone@example.test", "text": "t"},
        {"from": "ana@example.test", "to": ["gone@example.test", "ok@example.test"], "text": "t"},
    ])  # fmt: skip
    provider = FakeProvider()
    async with delivering(worker, pool, FAST, provider, state=state):

        async def settled() -> bool:
            return len(provider.sent) == 1 and await count(pool) == 0

        await until(settled, 30)
    [sent] = provider.sent
    assert sent.id == mixed
    assert sent.email.skip == frozenset({0})  # the suppressed recipient is not sent to
    events = await events_of(pool)
    assert events[alone] == [("email.suppressed", True, ["gone@example.test"])]
    assert events[mixed] == [("email.suppressed", False, ["gone@example.test"]),
                             ("email.sent", True, ["ok@example.test"])]  # fmt: skip
