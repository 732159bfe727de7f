"""The engine's durable DynamoDB writes: CPU per item, by commit size and key order.

    python -m benchmarks.writes --items 3600 --prefill 50000 --runs 3

Conditional puts (``attribute_not_exists(pk)``, an idempotency claim's) go through the
engine's own TransactWriteItems handler and store, in this process (no HTTP), into a table
already holding ``--prefill`` items: 1, 10 or 100 puts per call, each call one commit.
Keys are either random (what the state store writes: partitions named by a hash) or
ordered (a counter). The CPU of this process (``time.process_time``: the event loop and
the store's thread, user and system) per item written, for each durability.

What it shows: an item with a random key costs about the same however many share its
commit, because each dirties a page of its own that SQLite writes to the WAL, checkpoints
and (fsync) syncs; ordered keys share pages. Medians of ``--runs``.
"""

import argparse
import asyncio
import pathlib
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from localsqs.dynamo import batch_write_item, transact_write_items
from localsqs.store import Durability, Store
from localsqs.tables import Tables
from state.table import encode

TABLE = "bench-state"
GROUPS = (1, 10, 100)


def _item(pk: str) -> dict[str, Any]:
    """A claim the size of intake's: id, digest, state, owner, times."""
    now = time.time()
    return encode(
        {
            "pk": pk,
            "sk": "-",
            "id": f"em_{secrets.token_hex(12)}",
            "digest": secrets.token_hex(32),
            "state": "pending",
            "owner": secrets.token_hex(8),
            "at": now,
            "expires": int(now) + 86_400,
        }
    )


def _random_keys() -> Iterator[str]:
    while True:
        yield f"idem#anon#{secrets.token_hex(20)}"


def _ordered_keys() -> Iterator[str]:
    number = 0
    while True:
        number += 1
        yield f"idem#anon#{number:040d}"


KEYS: dict[str, Callable[[], Iterator[str]]] = {"random": _random_keys, "ordered": _ordered_keys}


async def _per_item(
    durability: Durability, keys: str, items: int, prefill: int
) -> dict[int, float]:
    """CPU-µs per item for each group size, on a fresh store of ``prefill`` items."""
    with tempfile.TemporaryDirectory(prefix="bench-writes-") as data:
        store = Store(pathlib.Path(data) / "localsqs.db", durability)
        store.open()
        try:
            return await _measure(store, keys, items, prefill)
        finally:
            store.close()


async def _measure(store: Store, keys: str, items: int, prefill: int) -> dict[int, float]:
    """Fill ``store``'s table with ``prefill`` items, then time each group size."""
    tables = Tables(store, region="us-east-1", account="000000000000")
    await tables.start()
    await tables.create(TABLE, "pk", "sk", billing="PAY_PER_REQUEST", sse=True)
    names = KEYS[keys]()
    for _ in range(prefill // 25):
        puts = [{"PutRequest": {"Item": _item(next(names))}} for _ in range(25)]
        await batch_write_item(tables, {"RequestItems": {TABLE: puts}})
    costs = {}
    for group in GROUPS:
        calls = [
            [
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": _item(next(names)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for _ in range(group)
            ]
            for _ in range(max(items // group, 1))
        ]
        started = time.process_time()
        for actions in calls:
            await transact_write_items(tables, {"TransactItems": actions})
        spent = time.process_time() - started
        costs[group] = spent / (len(calls) * group) * 1e6
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--items", type=int, default=3600, help="items written per group size")
    parser.add_argument("--prefill", type=int, default=50_000, help="items in the table first")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    found: dict[tuple[str, str], dict[int, list[float]]] = {}
    for run in range(args.runs):
        durabilities: tuple[Durability, ...] = ("fsync", "os")
        cases = [(d, k) for d in durabilities for k in KEYS]
        for durability, keys in cases if run % 2 == 0 else cases[::-1]:
            costs = asyncio.run(_per_item(durability, keys, args.items, args.prefill))
            for group, us in costs.items():
                found.setdefault((durability, keys), {}).setdefault(group, []).append(us)
    print(
        f"CPU-µs per item written (conditional put), medians of {args.runs} runs, "
        f"into a table of {args.prefill} items"
    )
    print(f"{'durability':<12}{'keys':<10}" + "".join(f"{f'{g} per commit':>16}" for g in GROUPS))
    for (durability, keys), by_group in found.items():
        cells = "".join(f"{statistics.median(by_group[g]):>16.1f}" for g in GROUPS)
        print(f"{durability:<12}{keys:<10}{cells}")


if __name__ == "__main__":
    main()
