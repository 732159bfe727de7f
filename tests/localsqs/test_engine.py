"""The engine in-process: retention and deduplication expiry, counts, group commit."""

import asyncio
import pathlib
import sqlite3
from collections.abc import AsyncIterator

import pytest

from localsqs.engine import Engine, SendEntry
from localsqs.store import Store


@pytest.fixture
async def engine(tmp_path: pathlib.Path) -> AsyncIterator[Engine]:
    store = Store(tmp_path / "db.sqlite", durability="os")
    store.open()
    engine = Engine(store, region="us-east-1", account="000000000000", base_url="http://x")
    await engine.start()
    yield engine
    store.close()


def entry(body: str, group: str = "g", dedup: str | None = None) -> SendEntry:
    return SendEntry(body=body, attributes=None, attributes_size=0, group_id=group,
                     dedup_id=dedup or body, delay_s=None)  # fmt: skip


async def backdate(engine: Engine, ms: int) -> None:
    def shift(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE messages SET sent_at = sent_at - ?", (ms,))
        conn.execute("UPDATE dedup SET expires = expires - ?", (ms,))

    await engine.store.call(shift)


async def test_messages_past_retention_and_expired_dedup_ids_are_swept(engine: Engine) -> None:
    queue = await engine.create_queue(
        "old.fifo", {"FifoQueue": "true", "MessageRetentionPeriod": "60"}
    )
    await engine.send(queue, [entry("a"), entry("b")])
    await backdate(engine, 61_000)
    assert await engine.sweep() == 2
    counts = await engine.attributes(queue, ["ApproximateNumberOfMessages"])
    assert counts == {"ApproximateNumberOfMessages": "0"}
    # The deduplication window (5 min) has passed too: the same ID is accepted again.
    await backdate(engine, 300_000)
    await engine.sweep()
    [stored] = await engine.send(queue, [entry("a")])
    assert not isinstance(stored, Exception)
    assert len(await engine.receive(queue, 10, 0, None)) == 1


async def test_concurrent_calls_share_commits_and_each_gets_its_own_answer(
    engine: Engine,
) -> None:
    queue = await engine.create_queue("many.fifo", {"FifoQueue": "true"})
    results = await asyncio.gather(
        *(engine.send(queue, [entry(f"m{i}", group=f"g{i}")]) for i in range(200))
    )
    ids = {r[0].message_id for r in results if not isinstance(r[0], Exception)}
    assert len(ids) == 200
    counts = await engine.attributes(queue, ["ApproximateNumberOfMessages"])
    assert counts["ApproximateNumberOfMessages"] == "200"


async def test_a_failing_call_does_not_undo_the_others_in_its_commit(engine: Engine) -> None:
    queue = await engine.create_queue("iso", {})

    def boom(conn: sqlite3.Connection) -> None:
        raise RuntimeError("this call fails")

    outcomes = await asyncio.gather(
        engine.send(queue, [SendEntry("kept", None, 0, None, None, None)]),
        engine.store.call(boom),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], RuntimeError)
    assert [r.body for r in await engine.receive(queue, 10, 0, None)] == ["kept"]
