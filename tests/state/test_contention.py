"""A retry storm on one Idempotency-Key, across two intakes sharing one state store: one
email, one id for every request, and no 503 for the key or for anybody else's."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from aws.errors import Unavailable
from intake.config import IntakeConfig
from intake.service import IntakeService
from metrics.state import StateMetrics
from pool.config import PoolConfig
from state.config import StateConfig
from state.idempotency import Conflict, Idempotency
from state.table import ConditionFailed, StateTable
from tests.support.queues import drain

Answer = tuple[int, Any, float]


@pytest.fixture
async def intakes(
    engine_stack: tuple[PoolConfig, StateConfig],
) -> AsyncIterator[tuple[list[IntakeService], aiohttp.ClientSession]]:
    pool, state = engine_stack
    async with (
        IntakeService(pool, IntakeConfig(port=0), state=state) as one,
        IntakeService(pool, IntakeConfig(port=0), state=state) as two,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        yield [one, two], http


def mail(to: str) -> dict[str, Any]:
    return {"from": "app@example.test", "to": to, "subject": "s", "text": "t"}


async def post(http: aiohttp.ClientSession, url: str, doc: Any, key: str) -> Answer:
    started = time.monotonic()
    async with http.post(f"{url}/v1/emails", json=doc, headers={"Idempotency-Key": key}) as r:
        return r.status, await r.json(), time.monotonic() - started


async def test_a_hundred_concurrent_duplicates_across_two_intakes_get_one_id_and_no_503(
    intakes: tuple[list[IntakeService], aiohttp.ClientSession],
    engine_stack: tuple[PoolConfig, StateConfig],
) -> None:
    (one, two), http = intakes
    storm = [
        post(http, (one, two)[i % 2].url, mail("storm@example.test"), "the-hot-key")
        for i in range(100)
    ]

    async def bystanders() -> list[Answer]:
        await asyncio.sleep(0.3)  # while the storm is under way
        return list(
            await asyncio.gather(
                *(
                    post(http, (one, two)[i % 2].url, mail(f"b{i}@example.test"), f"own-{i}")
                    for i in range(10)
                )
            )
        )

    *hot, others = await asyncio.gather(*storm, bystanders())
    assert sorted({status for status, _, _ in hot}) == [202], [a for a in hot if a[0] != 202][:3]
    assert len({doc["id"] for _, doc, _ in hot}) == 1
    assert sorted({status for status, _, _ in others}) == [202], others
    # The storm holds nobody else up: not for the send deadline (3 s here), nor near it.
    assert max(took for _, _, took in others) < 1.5
    queued = await drain(engine_stack[0])
    assert len(queued) == 11  # the storm's one email, and the ten others


def transactions(registry: CollectorRegistry) -> float:
    calls = 0.0
    for outcome in ("ok", "error"):
        calls += (
            registry.get_sample_value(
                "mailpool_state_calls_total", {"action": "TransactWriteItems", "outcome": outcome}
            )
            or 0.0
        )
    return calls


async def test_a_taken_key_costs_the_claims_beside_it_one_extra_call(
    state_config: StateConfig,
) -> None:
    registry = CollectorRegistry()
    async with StateTable(state_config, metrics=StateMetrics(registry)) as table:
        await table.claim({"pk": "idem#taken", "sk": "-", "id": "first"})
        claims = [table.claim({"pk": f"idem#new-{i}", "sk": "-", "id": f"e{i}"}) for i in range(10)]
        results = await asyncio.gather(
            *claims, table.claim({"pk": "idem#taken", "sk": "-", "id": "second"}),
            return_exceptions=True,
        )  # fmt: skip
    *fresh, taken = results
    assert fresh == [None] * 10
    assert isinstance(taken, ConditionFailed)
    assert taken.item is not None
    assert taken.item["id"] == "first"
    # One call for the first claim; one the taken key cancelled; one more for the others.
    assert transactions(registry) == 3


async def test_the_same_request_in_one_process_follows_its_leader_without_claiming(
    state_config: StateConfig,
) -> None:
    registry = CollectorRegistry()
    async with StateTable(state_config, metrics=StateMetrics(registry)) as table:
        keys = Idempotency(table, lifetime_s=3600, takeover_s=5.0)
        leader = await keys.begin("shop", "order-1", "digest", "id-0", deadline_s=2.0)
        followers = [
            asyncio.create_task(keys.begin("shop", "order-1", "digest", f"id-{i}", 2.0))
            for i in range(1, 50)
        ]
        await asyncio.sleep(0.05)
        assert not any(f.done() for f in followers)  # they wait for SQS's answer ...
        keys.settle(leader, leader.email_id)  # ... which came
        decisions = await asyncio.gather(*followers)
        with pytest.raises(Conflict):  # a different request finds the claim by itself
            await keys.begin("shop", "order-1", "other digest", "id-x", deadline_s=2.0)
    assert leader.enqueue
    assert {(d.email_id, d.enqueue) for d in decisions} == {("id-0", False)}
    assert transactions(registry) == 2  # the leader's claim, and the other request's


async def test_followers_of_a_leader_that_failed_find_out_on_their_own(
    state_config: StateConfig,
) -> None:
    async with StateTable(state_config) as table:
        keys = Idempotency(table, lifetime_s=3600, takeover_s=5.0)
        leader = await keys.begin("shop", "order-2", "digest", "id-0", deadline_s=2.0)
        follower = asyncio.create_task(keys.begin("shop", "order-2", "digest", "id-1", 0.5))
        await asyncio.sleep(0.05)
        keys.settle(leader, None)  # SQS did not take it: the follower is not told "id-0"
        with pytest.raises(Unavailable):  # the claim is still pending: it waits, then gives up
            await follower
        # Once the claim is marked accepted (a retry landed it after all), it is the answer.
        await keys.accepted("shop", "order-2", leader, "digest")
        again = await keys.begin("shop", "order-2", "digest", "id-2", deadline_s=2.0)
    assert (again.email_id, again.enqueue) == ("id-0", False)
