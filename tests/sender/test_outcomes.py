"""Each outcome of a delivery, through the real pool with a scripted provider, on both faces
of the delivery code (the sender, and the Lambda worker under a local event source)."""

import dataclasses

import pytest

from core.events import Event
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.dlq import list_dead_letters
from pool.pool import EVENTS, QueuePool
from pool.sqs import SqsClient
from sender.config import SenderConfig
from tests.support.enqueue import enqueue
from tests.support.fake_provider import FakeProvider
from tests.support.queues import count
from tests.support.waiting import until
from tests.support.workers import delivering

FAST = SenderConfig(wait_time_s=1, backoff_s=1, max_backoff_s=1, grace_s=5.0, concurrency=8,
                    metrics_port=0)  # fmt: skip
TWO = {"from": "ana@example.test", "to": ["bob@example.test", "eve@example.test"], "text": "t"}


async def events_of(config: PoolConfig) -> list[tuple[str, bool, list[int]]]:
    found = []
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        while batch := await pool.receive(EVENTS, max_messages=10, wait_s=0, visibility_s=30):
            for message in batch:
                e = Event.decode(message.body)
                found.append((e.type, e.terminal, [r.position for r in e.recipients]))
                await pool.delete(message)
    return found


@pytest.mark.parametrize(
    ("answers", "times", "expected", "dead"),
    [
        ({}, {}, [("email.sent", True, [0, 1])], False),
        ({"eve@example.test": "550 5.1.1"}, {},
         [("email.sent", True, [0]), ("email.bounced", False, [1])], False),
        ({"bob@example.test": "550 5.1.1", "eve@example.test": "554 5.7.1"}, {},
         [("email.bounced", True, [0, 1])], True),
        ({"bob@example.test": "transient"}, {"bob@example.test": 1},
         [("email.deferred", False, [0, 1]), ("email.sent", True, [0, 1])], False),
        ({"bob@example.test": "transient"}, {},
         [("email.deferred", False, [0, 1]), ("email.failed", True, [0, 1])], True),
    ],
    ids=["sent", "partly-refused", "all-refused", "deferred-then-sent", "retries-exhausted"],
)  # fmt: skip
async def test_each_outcome_settles_its_message_and_publishes_its_events(
    provisioned: PoolConfig,
    answers: dict[str, str],
    times: dict[str, int],
    expected: list[tuple[str, bool, list[int]]],
    dead: bool,
    worker: str,
) -> None:
    config = dataclasses.replace(provisioned, max_receive_count=2)
    await enqueue(config, [TWO])
    provider = FakeProvider(answers=answers, times=dict(times))
    async with SqsClient.from_config(config) as client:

        async def done() -> bool:
            letters = await list_dead_letters(client, config)
            return len(letters) == int(dead) and await count(config) == 0

        async with delivering(worker, config, FAST, provider):
            await until(done, 20)
    assert await events_of(config) == expected
    assert len(provider.sent) == (0 if dead else 1)  # handed to the provider once at most
