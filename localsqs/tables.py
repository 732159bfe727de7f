"""DynamoDB tables in the engine's SQLite store: the subset of the API mailpool uses.

Tables have a partition key and an optional sort key, both strings (``S``); items are kept
as DynamoDB JSON, one row each, ordered by (partition, sort) the way DynamoDB orders
strings (by UTF-8 bytes, which is SQLite's BINARY collation). Every operation is one store
job, so a conditional write checks and writes atomically. With TTL on, an item whose TTL
attribute (epoch seconds) has passed is deleted by the sweep, as DynamoDB does in the
background; until then reads still return it, as DynamoDB's do.
"""

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from localsqs import evaluation
from localsqs import expressions as ex
from localsqs.errors import DynamoError
from localsqs.expressions import Item, validation
from localsqs.schema import Table, check_item, split_key_condition
from localsqs.store import Store

MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
CONDITION_FAILED = "The conditional request failed"


def not_found(name: str) -> DynamoError:
    """ResourceNotFoundException for table ``name``."""
    return DynamoError(
        "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found"
    )


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a Query."""

    items: list[Item]
    last_key: Item | None


class Tables:
    """Table management and item operations with DynamoDB's semantics."""

    def __init__(self, store: Store, *, region: str, account: str) -> None:
        self.store = store
        self.region = region
        self.account = account
        self._tables: dict[str, Table] = {}

    async def start(self) -> None:
        """Load the table definitions."""

        def load(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return conn.execute("SELECT name, description FROM ddb_tables").fetchall()

        for name, raw in await self.store.call(load):
            self._tables[name] = Table.decode(name, raw)

    def table(self, name: str) -> Table:
        """The table ``name``; ResourceNotFoundException if there is none."""
        found = self._tables.get(name)
        if found is None:
            raise not_found(name)
        return found

    def names(self) -> list[str]:
        """Every table's name, sorted."""
        return sorted(self._tables)

    # Tables ---------------------------------------------------------------------------------

    async def create(
        self, name: str, hash_key: str, range_key: str | None, *, billing: str, sse: bool
    ) -> Table:
        """A new table; ResourceInUseException if it exists."""
        if name in self._tables:
            raise DynamoError("ResourceInUseException", f"Table already exists: {name}")
        arn = f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
        table = Table(name, hash_key, range_key, time.time(), arn, billing=billing, sse=sse)
        await self._save(table)
        self._tables[name] = table
        return table

    async def _save(self, table: Table) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO ddb_tables (name, description) VALUES (?, ?)",
                (table.name, table.encode()),
            )

        await self.store.call(save)

    async def set_ttl(self, name: str, attribute: str, enabled: bool) -> None:
        """Turn TTL on (on ``attribute``) or off."""
        table = self.table(name)
        if enabled and table.ttl_attribute is not None:
            raise validation("TimeToLive is already enabled")
        if not enabled and table.ttl_attribute is None:
            raise validation("TimeToLive is already disabled")
        table.ttl_attribute = attribute if enabled else None

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE ddb_tables SET description = ? WHERE name = ?", (table.encode(), name)
            )
            rows = conn.execute("SELECT pk, sk, item FROM ddb_items WHERE tbl = ?", (name,))
            updates = [(table.expires(orjson.loads(r[2])), name, r[0], r[1]) for r in rows]
            conn.executemany(
                "UPDATE ddb_items SET expires = ? WHERE tbl = ? AND pk = ? AND sk = ?", updates
            )

        await self.store.call(save)

    async def delete(self, name: str) -> Table:
        """Drop a table and its items."""
        table = self.table(name)

        def drop(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM ddb_items WHERE tbl = ?", (name,))
            conn.execute("DELETE FROM ddb_tables WHERE name = ?", (name,))

        await self.store.call(drop)
        del self._tables[name]
        return table

    async def counts(self, name: str) -> tuple[int, int]:
        """(items, bytes) of a table."""

        def count(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(item)), 0) FROM ddb_items WHERE tbl = ?",
                (name,),
            ).fetchone()
            return int(row[0]), int(row[1])

        return await self.store.call(count)

    # Items ----------------------------------------------------------------------------------

    async def get(self, name: str, key: Item) -> Item | None:
        """The item at ``key``, if any."""
        table = self.table(name)
        pk, sk = table.check_key(key)

        def read(conn: sqlite3.Connection) -> Item | None:
            return _read(conn, name, pk, sk)

        return await self.store.call(read)

    async def put(
        self, name: str, item: Item, condition: Any, *, return_old: bool, old_on_failure: bool
    ) -> Item | None:
        """Write ``item`` whole if ``condition`` holds for what is there; the old item."""
        table = self.table(name)
        pk, sk = table.key_of(item, "item")
        check_item(item)
        expires = table.expires(item)
        raw = orjson.dumps(item).decode()

        def write(conn: sqlite3.Connection) -> Item | None:
            old = _read(conn, name, pk, sk)
            _require(condition, old, old_on_failure)
            conn.execute(
                "INSERT OR REPLACE INTO ddb_items (tbl, pk, sk, item, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, pk, sk, raw, expires),
            )
            return old

        old = await self.store.call(write)
        return old if return_old else None

    async def update(
        self, name: str, key: Item, update: ex.Update, condition: Any, *, old_on_failure: bool
    ) -> tuple[Item | None, Item]:
        """Apply ``update`` to the item at ``key`` (created if absent) if ``condition``
        holds; (old item, new item)."""
        table = self.table(name)
        pk, sk = table.check_key(key)
        keys = {table.hash_key, table.range_key}
        for target in [n for n, _ in update.set] + list(update.remove) + [n for n, _ in update.add]:
            if target in keys:
                raise validation(
                    "One or more parameter values were invalid: Cannot update attribute "
                    f"{target}. This attribute is part of the key"
                )

        def write(conn: sqlite3.Connection) -> tuple[Item | None, Item]:
            old = _read(conn, name, pk, sk)
            _require(condition, old, old_on_failure)
            new = evaluation.apply(update, {**(old or {}), **key})
            check_item(new)
            conn.execute(
                "INSERT OR REPLACE INTO ddb_items (tbl, pk, sk, item, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, pk, sk, orjson.dumps(new).decode(), table.expires(new)),
            )
            return old, new

        return await self.store.call(write)

    async def remove(
        self, name: str, key: Item, condition: Any, *, old_on_failure: bool
    ) -> Item | None:
        """Delete the item at ``key`` if ``condition`` holds; the old item."""
        table = self.table(name)
        pk, sk = table.check_key(key)

        def write(conn: sqlite3.Connection) -> Item | None:
            old = _read(conn, name, pk, sk)
            _require(condition, old, old_on_failure)
            conn.execute(
                "DELETE FROM ddb_items WHERE tbl = ? AND pk = ? AND sk = ?", (name, pk, sk)
            )
            return old

        return await self.store.call(write)

    async def batch_get(self, requests: dict[str, list[Item]]) -> dict[str, list[Item]]:
        """Every item found at the requested keys, by table (missing keys are left out)."""
        wanted: list[tuple[str, str, str]] = []
        total = 0
        for name, keys in requests.items():
            table = self.table(name)
            located = [table.check_key(key) for key in keys]
            if len(set(located)) != len(located):
                raise validation("Provided list of item keys contains duplicates")
            wanted += [(name, pk, sk) for pk, sk in located]
            total += len(keys)
        if total > MAX_BATCH_GET:
            raise validation("Too many items requested for the BatchGetItem call: at most 100 keys")

        def read(conn: sqlite3.Connection) -> dict[str, list[Item]]:
            found: dict[str, list[Item]] = {name: [] for name in requests}
            for name, pk, sk in wanted:
                item = _read(conn, name, pk, sk)
                if item is not None:
                    found[name].append(item)
            return found

        return await self.store.call(read)

    async def transact_puts(self, puts: list[tuple[str, Item, Any, bool]]) -> None:
        """Write every (table, item, condition, old on failure) put, or none: when a
        condition fails, TransactionCanceledException with a reason per put."""
        located = []
        for name, item, condition, old_on_failure in puts:
            table = self.table(name)
            pk, sk = table.key_of(item, "item")
            check_item(item)
            located.append((name, pk, sk, item, table.expires(item), condition, old_on_failure))
        if len({(n, pk, sk) for n, pk, sk, *_ in located}) != len(located):
            raise validation("Transaction request cannot include multiple operations on one item")

        def write(conn: sqlite3.Connection) -> None:
            reasons: list[dict[str, Any]] = []
            for name, pk, sk, _, _, condition, old_on_failure in located:
                old = _read(conn, name, pk, sk)
                if condition is not None and not evaluation.holds(condition, old or {}):
                    reason: dict[str, Any] = {
                        "Code": "ConditionalCheckFailed",
                        "Message": CONDITION_FAILED,
                    }
                    if old_on_failure and old is not None:
                        reason["Item"] = old
                    reasons.append(reason)
                else:
                    reasons.append({"Code": "None"})
            if any(r["Code"] != "None" for r in reasons):
                codes = ", ".join(r["Code"] for r in reasons)
                raise DynamoError(
                    "TransactionCanceledException",
                    f"Transaction cancelled, please refer cancellation reasons for specific "
                    f"reasons [{codes}]",
                    reasons=reasons,
                )
            for name, pk, sk, item, expires, _, _ in located:
                conn.execute(
                    "INSERT OR REPLACE INTO ddb_items (tbl, pk, sk, item, expires) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (name, pk, sk, orjson.dumps(item).decode(), expires),
                )

        await self.store.call(write)

    async def batch_write(self, requests: dict[str, list[dict[str, Any]]]) -> None:
        """Apply every put and delete (unconditional), all in one transaction."""
        rows: list[tuple[str, str, str, str | None, int | None]] = []
        for name, entries in requests.items():
            table = self.table(name)
            seen: set[tuple[str, str]] = set()
            for entry in entries:
                if set(entry) == {"PutRequest"}:
                    item = entry["PutRequest"]["Item"]
                    pk, sk = table.key_of(item, "item")
                    check_item(item)
                    rows.append((name, pk, sk, orjson.dumps(item).decode(), table.expires(item)))
                elif set(entry) == {"DeleteRequest"}:
                    pk, sk = table.check_key(entry["DeleteRequest"]["Key"])
                    rows.append((name, pk, sk, None, None))
                else:
                    raise validation("Supplied AttributeValue has more than one datatypes set")
                if (pk, sk) in seen:
                    raise validation("Provided list of item keys contains duplicates")
                seen.add((pk, sk))
        if not 1 <= len(rows) <= MAX_BATCH_WRITE:
            raise validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Map value must satisfy constraint: [Member must have length less "
                "than or equal to 25, Member must have length greater than or equal to 1]"
            )

        def write(conn: sqlite3.Connection) -> None:
            for name, pk, sk, raw, expires in rows:
                if raw is None:
                    conn.execute(
                        "DELETE FROM ddb_items WHERE tbl = ? AND pk = ? AND sk = ?",
                        (name, pk, sk),
                    )
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO ddb_items (tbl, pk, sk, item, expires) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (name, pk, sk, raw, expires),
                    )

        await self.store.call(write)

    async def query(
        self,
        name: str,
        key_condition: Any,
        *,
        limit: int | None,
        forward: bool,
        start: Item | None,
    ) -> Page:
        """Items of one partition whose sort key meets ``key_condition``, in order."""
        table = self.table(name)
        partition, sort = split_key_condition(table, key_condition)
        clauses, args = ["tbl = ?", "pk = ?"], [name, partition]
        if sort is not None:
            op, strings = sort
            values: list[Any] = list(strings)
            if op == "BETWEEN":
                clauses.append("sk BETWEEN ? AND ?")
            elif op == "begins_with":
                clauses.append("substr(sk, 1, ?) = ?")
                values = [len(values[0]), values[0]]
            else:
                clauses.append(f"sk {op} ?")
            args += values
        if start is not None:
            start_pk, start_sk = table.check_key(start)
            if start_pk != partition:
                raise validation("The provided starting key is invalid")
            clauses.append("sk > ?" if forward else "sk < ?")
            args.append(start_sk)
        sql = (
            f"SELECT item FROM ddb_items WHERE {' AND '.join(clauses)} "
            f"ORDER BY sk {'ASC' if forward else 'DESC'}"
        )
        if limit is not None:
            sql += f" LIMIT {limit + 1}"

        def read(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute(sql, args)]

        raws = await self.store.call(read)
        items = [orjson.loads(raw) for raw in raws]
        last: Item | None = None
        if limit is not None and len(items) > limit:
            items = items[:limit]
            last = {k: v for k, v in items[-1].items() if k in (table.hash_key, table.range_key)}
        return Page(items, last)

    async def sweep(self, now: float | None = None) -> int:
        """Delete items whose TTL has passed; how many."""
        moment = int(time.time() if now is None else now)

        def sweep(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM ddb_items WHERE expires IS NOT NULL AND expires < ?", (moment,)
            ).rowcount

        return await self.store.call(sweep)


def _read(conn: sqlite3.Connection, name: str, pk: str, sk: str) -> Item | None:
    row = conn.execute(
        "SELECT item FROM ddb_items WHERE tbl = ? AND pk = ? AND sk = ?", (name, pk, sk)
    ).fetchone()
    return None if row is None else orjson.loads(row[0])


def _require(condition: Any, old: Item | None, old_on_failure: bool) -> None:
    if condition is not None and not evaluation.holds(condition, old or {}):
        raise DynamoError(
            "ConditionalCheckFailedException",
            CONDITION_FAILED,
            item=old if old_on_failure and old is not None else None,
        )
