"""The engine: queues in memory, messages in the store, long polls woken on change."""

import asyncio
import hashlib
import random
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson

from localsqs import messages as ops
from localsqs.errors import SqsError, invalid, no_queue
from localsqs.queues import (
    DEFAULTS,
    FIFO_DEFAULTS,
    Queue,
    check_attributes,
    check_name,
    parse_redrive,
)
from localsqs.store import Store

DEDUP_WINDOW_MS = 5 * 60 * 1000
PURGE_INTERVAL_MS = 60_000
#: How often a waiting long poll looks again even without a wake-up (visibility expiry).
RECHECK_S = 0.25


@dataclass(frozen=True, slots=True)
class SendEntry:
    """One message of a SendMessage(Batch) call, validated by the protocol layer."""

    body: str
    attributes: str | None
    attributes_size: int
    group_id: str | None
    dedup_id: str | None
    delay_s: int | None


class Engine:
    """Queue management and message operations with SQS's semantics."""

    def __init__(
        self, store: Store, *, region: str, account: str, base_url: str, duplicates: float = 0.0
    ) -> None:
        self.store = store
        #: Fault injection: the fraction of standard-queue messages stored twice.
        self.duplicates = duplicates
        self.region = region
        self.account = account
        self.base_url = base_url.rstrip("/")
        self.ledger = ops.Ledger()
        # A rolled-back write may have moved the in-memory counters: reload them.
        store.after_rollback = self.ledger.load
        self._by_name: dict[str, Queue] = {}
        self._by_id: dict[int, Queue] = {}

    async def start(self) -> None:
        """Load queues and counters from the store."""

        def load(conn: sqlite3.Connection) -> list[tuple[int, str, str, int, int, int]]:
            self.ledger.load(conn)
            return conn.execute(
                "SELECT id, name, attributes, created, modified, purged FROM queues"
            ).fetchall()

        for row_id, name, attributes, created, modified, purged in await self.store.call(load):
            self._register(
                Queue(row_id, name, orjson.loads(attributes), created, modified, purged=purged)
            )

    def rebase(self, base_url: str) -> None:
        """Set the URL queues are addressed by (known once the server is bound)."""
        self.base_url = base_url.rstrip("/")
        for queue in list(self._by_id.values()):
            self._register(queue)

    def _register(self, queue: Queue) -> None:
        queue.arn = f"arn:aws:sqs:{self.region}:{self.account}:{queue.name}"
        queue.url = f"{self.base_url}/{self.account}/{queue.name}"
        self._by_name[queue.name] = queue
        self._by_id[queue.id] = queue

    # Queues ---------------------------------------------------------------------------------

    def queue(self, name: str) -> Queue:
        """The queue called ``name``."""
        found = self._by_name.get(name)
        if found is None:
            raise no_queue()
        return found

    def queue_by_url(self, url: str) -> Queue:
        """The queue a QueueUrl names (its last path segment; any host)."""
        return self.queue(url.rstrip("/").rsplit("/", 1)[-1])

    def queue_by_arn(self, arn: str) -> Queue | None:
        """The queue with ARN ``arn``, if it exists here."""
        return self._by_name.get(arn.rsplit(":", 1)[-1])

    def queues(self, prefix: str = "") -> list[Queue]:
        """Queues whose names start with ``prefix``, by name."""
        return sorted(
            (q for q in self._by_name.values() if q.name.startswith(prefix)), key=lambda q: q.name
        )

    def _check_redrive(self, raw: str, fifo: bool) -> None:
        redrive = parse_redrive(raw)
        if redrive is None:
            return
        target = self.queue_by_arn(redrive.target_arn)
        if target is None:
            raise invalid(
                "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target "
                "does not exist."
            )
        if target.fifo != fifo:
            raise invalid(
                "Value for parameter RedrivePolicy is invalid. Reason: Dead-letter queue must "
                "be same type of queue as the source."
            )

    async def create_queue(self, name: str, attributes: Mapping[str, str]) -> Queue:
        """CreateQueue: a no-op for an existing queue with the same attributes."""
        fifo = str(attributes.get("FifoQueue", "false")).lower() == "true"
        check_name(name, fifo)
        checked = check_attributes(attributes, fifo=fifo, creating=True)
        self._check_redrive(checked.get("RedrivePolicy", ""), fifo)
        full = {**DEFAULTS, **(FIFO_DEFAULTS if fifo else {}), **checked}
        if fifo:
            full["FifoQueue"] = "true"
        existing = self._by_name.get(name)
        if existing is not None:
            if any(existing.attributes.get(k) != v for k, v in checked.items()):
                raise SqsError(
                    "QueueNameExists",
                    f"A queue already exists with the same name and a different value for "
                    f"attribute(s) {', '.join(sorted(checked))}",
                )
            return existing
        now = int(time.time())
        encoded = orjson.dumps(full).decode()

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO queues (name, attributes, created, modified) VALUES (?, ?, ?, ?)",
                (name, encoded, now, now),
            )
            return int(cursor.lastrowid or 0)

        queue = Queue(await self.store.call(insert), name, full, now, now)
        self._register(queue)
        return queue

    async def set_attributes(self, queue: Queue, attributes: Mapping[str, str]) -> None:
        """SetQueueAttributes."""
        checked = check_attributes(attributes, fifo=queue.fifo, creating=False)
        self._check_redrive(checked.get("RedrivePolicy", ""), queue.fifo)
        merged = {**queue.attributes, **checked}
        if merged.get("RedrivePolicy") == "":
            del merged["RedrivePolicy"]
        now = int(time.time())
        encoded = orjson.dumps(merged).decode()
        await self.store.call(
            lambda conn: conn.execute(
                "UPDATE queues SET attributes = ?, modified = ? WHERE id = ?",
                (encoded, now, queue.id),
            )
        )
        queue.attributes = merged
        queue.modified = now
        queue.refresh()

    async def attributes(self, queue: Queue, names: Sequence[str]) -> dict[str, str]:
        """GetQueueAttributes: stored attributes plus the computed ones."""
        visible, in_flight, delayed = await self.store.call(
            lambda conn: ops.counts(conn, self.ledger, queue.id)
        )
        every = {
            **queue.attributes,
            "QueueArn": queue.arn,
            "CreatedTimestamp": str(queue.created),
            "LastModifiedTimestamp": str(queue.modified),
            "ApproximateNumberOfMessages": str(visible),
            "ApproximateNumberOfMessagesNotVisible": str(in_flight),
            "ApproximateNumberOfMessagesDelayed": str(delayed),
        }
        if not names or "All" in names:
            return every
        for name in names:
            if name not in every and name not in (
                "Policy",
                "RedrivePolicy",
                "KmsMasterKeyId",
                "RedriveAllowPolicy",
            ):
                raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        return {n: every[n] for n in names if n in every}

    async def delete_queue(self, queue: Queue) -> None:
        """DeleteQueue, with its messages and deduplication records."""

        def drop(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE queue = ?", (queue.id,))
            conn.execute("DELETE FROM dedup WHERE queue = ?", (queue.id,))
            conn.execute("DELETE FROM queues WHERE id = ?", (queue.id,))
            self.ledger.totals.pop(queue.id, None)

        await self.store.call(drop)
        self._by_name.pop(queue.name, None)
        self._by_id.pop(queue.id, None)
        queue.notify()

    async def purge(self, queue: Queue) -> None:
        """PurgeQueue: at most once per 60 seconds, as on SQS."""
        now = ops.now_ms()
        if now - queue.purged < PURGE_INTERVAL_MS:
            raise SqsError(
                "PurgeQueueInProgress",
                f"Only one PurgeQueue operation on {queue.name} is allowed every 60 seconds.",
            )

        def run(conn: sqlite3.Connection) -> None:
            ops.purge(conn, self.ledger, queue.id)
            conn.execute("UPDATE queues SET purged = ? WHERE id = ?", (now, queue.id))

        await self.store.call(run)
        queue.purged = now

    def dead_letter_sources(self, queue: Queue) -> list[Queue]:
        """Queues whose redrive policy targets ``queue``."""
        return [
            q for q in self.queues() if q.redrive is not None and q.redrive.target_arn == queue.arn
        ]

    # Messages -------------------------------------------------------------------------------

    def _new_message(self, queue: Queue, entry: SendEntry) -> ops.NewMessage:
        size = len(entry.body.encode()) + entry.attributes_size
        if size > queue.max_size:
            raise invalid(
                f"One or more parameters are invalid. Reason: Message must be shorter than "
                f"{queue.max_size} bytes."
            )
        if not queue.fifo:
            delay = queue.delay_ms if entry.delay_s is None else entry.delay_s * 1000
            copies = 2 if self.duplicates and random.random() < self.duplicates else 1
            return ops.NewMessage(
                entry.body, entry.attributes, entry.group_id, None, None, delay, copies
            )
        if entry.delay_s is not None:
            raise invalid(
                f"Value {entry.delay_s} for parameter DelaySeconds is invalid. Reason: The "
                "request include parameter that is not valid for this queue type."
            )
        if not entry.group_id:
            raise SqsError(
                "MissingParameter", "The request must contain the parameter MessageGroupId."
            )
        dedup_id = entry.dedup_id
        if dedup_id is None:
            if not queue.content_dedup:
                raise invalid(
                    "The queue should either have ContentBasedDeduplication enabled or "
                    "MessageDeduplicationId provided explicitly"
                )
            dedup_id = hashlib.sha256(entry.body.encode()).hexdigest()
        key = f"{entry.group_id}\x00{dedup_id}" if queue.dedup_per_group else dedup_id
        return ops.NewMessage(
            entry.body, entry.attributes, entry.group_id, key, dedup_id, queue.delay_ms
        )

    async def send(self, queue: Queue, entries: Sequence[SendEntry]) -> list[ops.Stored | SqsError]:
        """Store each valid entry; per entry, where it landed or why it was refused."""
        outcome: dict[int, ops.Stored | SqsError] = {}  # by the entry's position
        valid: list[ops.NewMessage] = []
        positions: list[int] = []
        for index, entry in enumerate(entries):
            try:
                valid.append(self._new_message(queue, entry))
                positions.append(index)
            except SqsError as exc:
                outcome[index] = exc
        if valid:
            stored = await self.store.call(
                lambda conn: ops.send(conn, self.ledger, queue.id, valid, DEDUP_WINDOW_MS)
            )
            outcome.update(zip(positions, stored, strict=True))
            queue.notify()
        return [outcome[index] for index in range(len(entries))]

    def _spec(self, queue: Queue, limit: int, visibility_s: int | None) -> ops.ReceiveSpec:
        redrive = None
        if queue.redrive is not None:
            target = self.queue_by_arn(queue.redrive.target_arn)
            if target is not None:
                redrive = (target.id, queue.redrive.max_receive_count, queue.arn)
        visibility_ms = queue.visibility_ms if visibility_s is None else visibility_s * 1000
        return ops.ReceiveSpec(queue.id, queue.fifo, limit, visibility_ms, redrive)

    async def receive(
        self, queue: Queue, limit: int, wait_s: int | None, visibility_s: int | None
    ) -> list[ops.Row]:
        """ReceiveMessage; a long poll returns as soon as something can be received."""
        spec = self._spec(queue, limit, visibility_s)
        wait = queue.wait_s if wait_s is None else wait_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            changed = queue.changed
            rows = await self.store.call(lambda conn: ops.receive(conn, self.ledger, spec))
            remaining = deadline - loop.time()
            if rows or remaining <= 0 or queue.id not in self._by_id:
                return rows
            try:
                async with asyncio.timeout(min(remaining, RECHECK_S)):
                    await changed.wait()
            except TimeoutError:
                pass

    async def delete(self, queue: Queue, receipts: Sequence[str]) -> list[SqsError | None]:
        """DeleteMessage(Batch): per receipt, None or its error."""

        outcome = await self.store.call(
            lambda conn: ops.delete(conn, self.ledger, queue.id, receipts)
        )
        if queue.fifo:
            queue.notify()  # a deleted message may unblock its group
        return outcome

    async def change_visibility(
        self, queue: Queue, changes: Sequence[tuple[str, int]]
    ) -> list[SqsError | None]:
        """ChangeMessageVisibility(Batch): per (receipt, seconds), None or its error."""

        def run(conn: sqlite3.Connection) -> list[SqsError | None]:
            outcome: list[SqsError | None] = []
            for receipt, seconds in changes:
                try:
                    ops.change_visibility(conn, queue.id, receipt, seconds)
                    outcome.append(None)
                except SqsError as exc:
                    outcome.append(exc)
            return outcome

        outcome = await self.store.call(run)
        if any(seconds == 0 for _, seconds in changes):
            queue.notify()
        return outcome

    async def sweep(self) -> int:
        """Drop expired messages and deduplication records; how many messages went."""
        retention = {q.id: q.retention_ms for q in self._by_id.values()}
        return await self.store.call(lambda conn: ops.sweep(conn, self.ledger, retention))
