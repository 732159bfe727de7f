"""Message operations as SQL, run on the store's thread (see ``store.py``).

Order is ``seq``, a counter the ledger hands out. A message is *in flight* when it has been
received and its ``visible_at`` lies ahead; *delayed* when it never was and ``visible_at``
lies ahead. FIFO receive takes visible messages in ``seq`` order, skipping every group that
has a message in flight, so a group yields nothing more until that message is deleted or
visible again. Every lookup goes through an index: cost does not grow with queue depth
(except, as on SQS, when the oldest messages all belong to groups in flight).
"""

import base64
import binascii
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from localsqs.errors import SqsError, invalid

_FIFO_RECEIVE = """
SELECT id, message_id, body, attributes, group_id, dedup_id, sent_at, receive_count,
       first_receive_at, seq, source_arn
FROM messages INDEXED BY messages_order
WHERE queue = :queue AND visible_at <= :now
  AND (group_id NOT IN (
        SELECT group_id FROM messages INDEXED BY messages_visibility
        WHERE queue = :queue AND visible_at > :now AND receive_count > 0))
ORDER BY seq LIMIT :limit
"""
_STANDARD_RECEIVE = """
SELECT id, message_id, body, attributes, group_id, dedup_id, sent_at, receive_count,
       first_receive_at, seq, source_arn
FROM messages INDEXED BY messages_visibility
WHERE queue = :queue AND visible_at <= :now
ORDER BY visible_at LIMIT :limit
"""


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)


@dataclass(slots=True)
class Ledger:
    """Counters owned by the store's thread: the next sequence number, messages per queue."""

    seq: int = 0
    totals: dict[int, int] = field(default_factory=dict)

    def next_seq(self) -> int:
        """A fresh sequence number."""
        self.seq += 1
        return self.seq

    def load(self, conn: sqlite3.Connection) -> None:
        """Initialise from the database (at start)."""
        self.seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0]
        self.totals = dict(
            conn.execute("SELECT queue, COUNT(*) FROM messages GROUP BY queue").fetchall()
        )

    def add(self, queue: int, delta: int) -> None:
        """Adjust a queue's message count."""
        self.totals[queue] = self.totals.get(queue, 0) + delta


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message to store."""

    body: str
    attributes: str | None
    group_id: str | None
    dedup_key: str | None
    dedup_id: str | None
    delay_ms: int
    #: Rows stored (2: a duplicate, one message ID with two receipts; fault injection).
    copies: int = 1


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a sent message landed (or the earlier copy it was deduplicated against)."""

    message_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Row:
    """A received message as the protocol layer renders it."""

    message_id: str
    receipt: str
    body: str
    attributes: str | None
    group_id: str | None
    dedup_id: str | None
    sent_at: int
    receive_count: int
    first_receive_at: int
    seq: int
    source_arn: str | None


def new_message_id() -> str:
    """A random message ID in UUID form, like SQS's."""
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{raw[16:20]}-{raw[20:]}"


def send(
    conn: sqlite3.Connection,
    ledger: Ledger,
    queue: int,
    messages: Sequence[NewMessage],
    dedup_window_ms: int,
) -> list[Stored]:
    """Store ``messages`` in order; a live deduplication key returns the earlier copy."""
    now = now_ms()
    stored: list[Stored] = []
    added = 0
    for m in messages:
        if m.dedup_key is not None:
            earlier = conn.execute(
                "SELECT message_id, seq FROM dedup WHERE queue = ? AND key = ? AND expires > ?",
                (queue, m.dedup_key, now),
            ).fetchone()
            if earlier is not None:
                stored.append(Stored(earlier[0], earlier[1]))
                continue
        message_id = new_message_id()
        for _ in range(m.copies):
            seq = ledger.next_seq()
            conn.execute(
                "INSERT INTO messages (queue, seq, message_id, body, attributes, group_id,"
                " dedup_id, sent_at, visible_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    queue,
                    seq,
                    message_id,
                    m.body,
                    m.attributes,
                    m.group_id,
                    m.dedup_id,
                    now,
                    now + m.delay_ms,
                ),
            )
            added += 1
        if m.dedup_key is not None:
            conn.execute(
                "INSERT OR REPLACE INTO dedup (queue, key, message_id, seq, expires)"
                " VALUES (?, ?, ?, ?, ?)",
                (queue, m.dedup_key, message_id, seq, now + dedup_window_ms),
            )
        stored.append(Stored(message_id, seq))
    ledger.add(queue, added)
    return stored


def receipt_of(queue: int, row_id: int, nonce: int) -> str:
    """An opaque receipt handle for one receive of one message."""
    return base64.urlsafe_b64encode(f"{queue}.{row_id}.{nonce}".encode()).decode()


def parse_receipt(receipt: str) -> tuple[int, int, int]:
    """(queue, row id, nonce) of a receipt handle; ReceiptHandleIsInvalid otherwise."""
    try:
        queue, row_id, nonce = base64.urlsafe_b64decode(receipt.encode()).decode().split(".")
        return int(queue), int(row_id), int(nonce)
    except (ValueError, UnicodeError, binascii.Error):
        raise SqsError(
            "ReceiptHandleIsInvalid", f'The input receipt handle "{receipt[:64]}" is not valid.'
        ) from None


@dataclass(frozen=True, slots=True)
class ReceiveSpec:
    """What one receive call asks of one queue."""

    queue: int
    fifo: bool
    limit: int
    visibility_ms: int
    #: (dead-letter queue id, maxReceiveCount, this queue's ARN) when redrive applies.
    redrive: tuple[int, int, str] | None


def receive(conn: sqlite3.Connection, ledger: Ledger, spec: ReceiveSpec) -> list[Row]:
    """Take up to ``spec.limit`` receivable messages and make them in flight."""
    now = now_ms()
    query = _FIFO_RECEIVE if spec.fifo else _STANDARD_RECEIVE
    candidates = conn.execute(
        query, {"queue": spec.queue, "now": now, "limit": spec.limit}
    ).fetchall()
    rows: list[Row] = []
    updates = []
    for (
        row_id,
        message_id,
        body,
        attributes,
        group_id,
        dedup_id,
        sent_at,
        count,
        first,
        seq,
        source,
    ) in candidates:
        if spec.redrive is not None and count >= spec.redrive[1]:
            target, _, source_arn = spec.redrive
            conn.execute(
                "UPDATE messages SET queue = ?, seq = ?, visible_at = ?, source_arn = ?"
                " WHERE id = ?",
                (target, ledger.next_seq(), now, source_arn, row_id),
            )
            ledger.add(spec.queue, -1)
            ledger.add(target, 1)
            continue
        nonce = secrets.randbits(62)
        first = first or now
        updates.append((now + spec.visibility_ms, first, now, nonce, row_id))
        rows.append(
            Row(
                message_id,
                receipt_of(spec.queue, row_id, nonce),
                body,
                attributes,
                group_id,
                dedup_id,
                sent_at,
                count + 1,
                first,
                seq,
                source,
            )
        )
    conn.executemany(
        "UPDATE messages SET visible_at = ?, receive_count = receive_count + 1,"
        " first_receive_at = ?, received_at = ?, nonce = ? WHERE id = ?",
        updates,
    )
    return rows


def delete(
    conn: sqlite3.Connection, ledger: Ledger, queue: int, receipts: Sequence[str]
) -> list[SqsError | None]:
    """Delete the messages the receipts name (one statement for the batch); per receipt,
    None or why it is invalid.

    A stale receipt (the message was received again since) deletes nothing and is not an
    error, as on SQS.
    """
    outcome: list[SqsError | None] = []
    keys: list[tuple[int, int, int]] = []
    for receipt in receipts:
        try:
            receipt_queue, row_id, nonce = parse_receipt(receipt)
            if receipt_queue != queue:
                raise SqsError(
                    "ReceiptHandleIsInvalid", "The receipt handle is not for this queue."
                )
        except SqsError as exc:
            outcome.append(exc)
            continue
        keys.append((row_id, queue, nonce))
        outcome.append(None)
    if keys:
        deleted = conn.executemany(
            "DELETE FROM messages WHERE id = ? AND queue = ? AND nonce = ?", keys
        ).rowcount
        ledger.add(queue, -deleted)
    return outcome


def change_visibility(conn: sqlite3.Connection, queue: int, receipt: str, timeout_s: int) -> None:
    """Make a message in flight visible ``timeout_s`` from now (12 h cap since its receive)."""
    receipt_queue, row_id, nonce = parse_receipt(receipt)
    if receipt_queue != queue:
        raise SqsError("ReceiptHandleIsInvalid", "The receipt handle is not for this queue.")
    found = conn.execute(
        "SELECT visible_at, receive_count, received_at, nonce FROM messages"
        " WHERE id = ? AND queue = ?",
        (row_id, queue),
    ).fetchone()
    now = now_ms()
    if found is None or found[3] != nonce:
        raise invalid(
            f"Value {receipt[:64]} for parameter ReceiptHandle is invalid. "
            "Reason: The receipt handle has expired."
        )
    visible_at, count, received_at, _ = found
    if count == 0 or visible_at <= now:
        raise SqsError("MessageNotInflight", "Message is not in flight.")
    if now + timeout_s * 1000 - received_at > 43_200_000:
        raise invalid(
            f"Value {timeout_s} for parameter VisibilityTimeout is invalid. Reason: Total "
            "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
        )
    conn.execute(
        "UPDATE messages SET visible_at = ? WHERE id = ?", (now + timeout_s * 1000, row_id)
    )


def counts(conn: sqlite3.Connection, ledger: Ledger, queue: int) -> tuple[int, int, int]:
    """(visible, in flight, delayed) messages of a queue."""
    in_flight, delayed = conn.execute(
        "SELECT COALESCE(SUM(receive_count > 0), 0), COALESCE(SUM(receive_count = 0), 0)"
        " FROM messages INDEXED BY messages_visibility WHERE queue = ? AND visible_at > ?",
        (queue, now_ms()),
    ).fetchone()
    total = ledger.totals.get(queue, 0)
    return max(0, total - in_flight - delayed), in_flight, delayed


def purge(conn: sqlite3.Connection, ledger: Ledger, queue: int) -> None:
    """Delete every message of a queue."""
    conn.execute("DELETE FROM messages WHERE queue = ?", (queue,))
    ledger.totals[queue] = 0


def sweep(conn: sqlite3.Connection, ledger: Ledger, retention_ms: dict[int, int]) -> int:
    """Drop messages past their queue's retention and expired deduplication records."""
    now = now_ms()
    dropped = 0
    for queue, retention in retention_ms.items():
        while True:
            gone = conn.execute(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages INDEXED BY"
                " messages_order WHERE queue = ? ORDER BY seq LIMIT 500) AND sent_at < ?",
                (queue, now - retention),
            ).rowcount
            ledger.add(queue, -gone)
            dropped += gone
            if gone < 500:
                break
    conn.execute("DELETE FROM dedup WHERE expires <= ?", (now,))
    return dropped
