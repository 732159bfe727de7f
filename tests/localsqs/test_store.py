"""The store's group commit: one job's failure never lets another report a write it lost."""

import asyncio
import pathlib
import sqlite3
import time

import pytest

from localsqs.store import Store


@pytest.fixture
def store(tmp_path: pathlib.Path) -> "Store":
    opened = Store(tmp_path / "store.db", "os")
    opened.open()
    yield opened  # type: ignore[misc]
    opened.close()


def rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM queues").fetchone()[0])


def insert(name: str) -> object:
    def job(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT INTO queues (name, attributes, created, modified) VALUES (?, '{}', 0, 0)",
            (name,),
        )
        return name

    return job


async def test_a_job_that_loses_the_whole_transaction_fails_every_job_of_its_group(
    store: Store,
) -> None:
    def blocker(conn: sqlite3.Connection) -> None:
        time.sleep(0.2)  # the next jobs queue up meanwhile and commit as one group

    def disk_full(conn: sqlite3.Connection) -> None:
        # What SQLite does on SQLITE_FULL mid-statement: it may roll back the transaction.
        conn.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    first = asyncio.ensure_future(store.call(blocker))
    await asyncio.sleep(0.05)
    before, lost = await asyncio.gather(
        store.call(insert("before")), store.call(disk_full), return_exceptions=True
    )
    await first
    assert isinstance(before, sqlite3.Error)  # its insert was undone: it must not say "done"
    assert isinstance(lost, sqlite3.Error)
    assert await store.call(rows) == 0
    assert await store.call(insert("after")) == "after"  # the store goes on
    assert await store.call(rows) == 1


async def test_a_job_s_own_failure_leaves_the_others_of_its_group_alone(store: Store) -> None:
    def blocker(conn: sqlite3.Connection) -> None:
        time.sleep(0.2)

    def refused(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO queues (name, attributes, created, modified) "
                     "VALUES ('x', '{}', 0, 0)")  # fmt: skip
        raise ValueError("the job's own error")

    first = asyncio.ensure_future(store.call(blocker))
    await asyncio.sleep(0.05)
    kept, failed = await asyncio.gather(
        store.call(insert("kept")), store.call(refused), return_exceptions=True
    )
    await first
    assert kept == "kept"
    assert isinstance(failed, ValueError)
    assert await store.call(rows) == 1  # the failed job's own insert was undone, not the other
