"""The state table on both DynamoDB implementations: provisioning, batches, conditions."""

import asyncio
import dataclasses
import socket
import time

import pytest
from prometheus_client import CollectorRegistry

from aws.errors import Misconfigured, Unavailable
from metrics.state import StateMetrics
from state.config import StateConfig
from state.idempotency import Idempotency
from state.store import State
from state.table import ConditionFailed, StateTable
from tests.state.conftest import with_endpoint


async def test_provisioning_twice_converges_and_turns_ttl_on(state_config: StateConfig) -> None:
    async with StateTable(state_config) as table:
        assert await table.provision() == "exists"
        ttl = await table._call("describe_time_to_live", TableName=table.name)
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires"


async def test_concurrent_writes_and_reads_are_batched_and_round_trip(
    state_config: StateConfig,
) -> None:
    items = [{"pk": f"p{i % 3}", "sk": f"s{i:03}", "n": i, "f": 1.5, "ok": True, "none": None}
             for i in range(60)]  # fmt: skip
    async with StateTable(state_config) as table:
        await asyncio.gather(*(table.write([item]) for item in items))
        found = await table.read_many([(i["pk"], i["sk"]) for i in items] + [("p0", "absent")])
        page, after = await table.query("p1", prefix="s", limit=5)
        rest, end = await table.query("p1", after=after)
    assert len(found) == 60
    assert found[("p0", "s000")] == {"pk": "p0", "sk": "s000", "n": 0, "f": 1.5, "ok": True}
    assert [i["sk"] for i in page] == ["s001", "s004", "s007", "s010", "s013"]
    assert after == "s013"
    assert len(page) + len(rest) == 20
    assert end is None


async def test_only_one_of_two_racing_first_writes_wins(state_config: StateConfig) -> None:
    async with StateTable(state_config) as table:
        results = await asyncio.gather(
            table.put({"pk": "k", "sk": "-", "owner": "a"}, only_new=True),
            table.put({"pk": "k", "sk": "-", "owner": "b"}, only_new=True),
            return_exceptions=True,
        )
        stored = await table.get("k", "-", consistent=True)
    failures = [r for r in results if isinstance(r, ConditionFailed)]
    assert len(failures) == 1
    assert failures[0].item == stored


async def test_a_missing_table_is_a_configuration_error(state_config: StateConfig) -> None:
    async with StateTable(state_config) as table:
        table.name = "no-such-table"
        with pytest.raises(Misconfigured, match="mailpool queues create"):
            await table.get("a", "b")


async def test_a_process_does_not_start_without_its_table(state_config: StateConfig) -> None:
    missing = dataclasses.replace(state_config, table="never-created")
    with pytest.raises(Misconfigured, match="never-created"):
        async with State(missing):
            pass


async def test_a_claim_to_an_unreachable_store_backs_off_and_fails_by_its_deadline(
    state_config: StateConfig,
) -> None:
    with socket.socket() as unused:  # a port nothing listens on: every call is refused
        unused.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{unused.getsockname()[1]}"
    registry = CollectorRegistry()
    async with StateTable(with_endpoint(state_config, down), metrics=StateMetrics(registry)) as t:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await t.claim({"pk": "idem#x", "sk": "-", "id": "e1"}, deadline_s=1.0)
        took = time.monotonic() - started
    calls = registry.get_sample_value(
        "mailpool_state_calls_total", {"action": "TransactWriteItems", "outcome": "error"}
    )
    assert took < 2.0  # given up by its deadline (and the call under way's margin)
    assert calls is not None
    assert 2 <= calls <= 12  # with backoff, not in a tight loop


async def test_a_dead_owners_key_is_answered_within_the_deadline_then_taken_over(
    state_config: StateConfig,
) -> None:
    # A claim whose owner died (intake killed mid-send) stays pending until its takeover
    # time. A retry before then is answered by its own deadline, not after the takeover time
    # (which left it nothing to send with, and a fresh pending claim for the next retry: a
    # livelock the intake-kill fault scenario found); one after it takes the key over.
    async with StateTable(state_config) as table:
        dead = Idempotency(table, lifetime_s=3600, takeover_s=2.0)  # an intake killed -9
        keys = Idempotency(table, lifetime_s=3600, takeover_s=2.0)  # the intake retried on
        claimed = time.monotonic()
        first = await dead.begin("shop", "order-1", "digest", "id-1", deadline_s=0.5)
        assert first.enqueue  # ... and its owner dies before SQS answers
        with pytest.raises(Unavailable):  # (it used to wait out the 2 s takeover time)
            await keys.begin("shop", "order-1", "digest", "id-2", deadline_s=0.3)
        assert time.monotonic() - claimed < 1.5
        await asyncio.sleep(2.1 - (time.monotonic() - claimed))
        started = time.monotonic()
        taken = await keys.begin("shop", "order-1", "digest", "id-3", deadline_s=2.0)
        assert time.monotonic() - started < 1.0  # at once: its whole deadline left to send
        assert taken.enqueue
        assert taken.email_id == "id-1"  # the same id: SQS drops a copy that did land
