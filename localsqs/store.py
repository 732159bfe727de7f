"""The SQLite database behind localsqs, owned by one thread, with group commit.

Every operation runs on the store's thread inside a transaction that may hold many
operations; the caller's future resolves only after COMMIT. With ``durability="fsync"``
(SQLite ``synchronous=FULL`` in WAL mode) COMMIT reaches the disk, so an acknowledged
message survives a power loss; with ``"os"`` (``synchronous=NORMAL``) it reaches the OS,
which survives ``kill -9`` of the process but not of the machine. Batching many calls into
one COMMIT is what makes the fsync affordable: the cost is per commit, not per call.

A write that fails (a full disk, an I/O error) fails only the calls of its group, at once:
the transaction is rolled back, nothing is promised, the thread lives on and commits again
as soon as the disk takes writes. The cause is logged once per episode. The write-ahead log
is checkpointed every ``WAL_CHECKPOINT_PAGES`` pages and truncated back to
``WAL_LIMIT_BYTES`` afterwards, so it stays near 40 MiB plus the largest group commit.
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import pathlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Durability = Literal["fsync", "os"]
Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    created INTEGER NOT NULL,
    modified INTEGER NOT NULL,
    purged INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    queue INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,
    group_id TEXT,
    dedup_id TEXT,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    first_receive_at INTEGER,
    received_at INTEGER,
    nonce INTEGER NOT NULL DEFAULT 0,
    source_arn TEXT
);
CREATE INDEX IF NOT EXISTS messages_order ON messages (queue, seq);
CREATE INDEX IF NOT EXISTS messages_visibility ON messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS dedup (
    queue INTEGER NOT NULL,
    key TEXT NOT NULL,
    message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (queue, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires);
CREATE TABLE IF NOT EXISTS ddb_tables (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ddb_items (
    tbl TEXT NOT NULL,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    item TEXT NOT NULL,
    expires INTEGER,
    PRIMARY KEY (tbl, pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ddb_expiry ON ddb_items (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS s3_buckets (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    lifecycle TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS s3_objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    checksum TEXT,
    encryption TEXT,
    modified REAL NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
"""

_MAX_GROUP = 512
#: Pages of write-ahead log between automatic checkpoints (4 KiB pages: about 40 MiB).
WAL_CHECKPOINT_PAGES = 10_000
#: The WAL file is truncated back to this size after a checkpoint.
WAL_LIMIT_BYTES = 64 * 1024 * 1024


class RolledBack(sqlite3.OperationalError):
    """SQLite rolled the whole transaction back by itself (a full disk, an I/O error)."""


class DataDirError(RuntimeError):
    """The data directory cannot be opened or written (a full disk, permissions, I/O)."""


class DataDirUnusable(DataDirError):
    """The data directory's path cannot be a directory of this process's: a file stands in
    the way, or permission is denied. Another directory is the cure, not free space."""


class DataDirInUse(DataDirUnusable):
    """Another engine has the data directory open: two engines on one database would
    interleave their writes and break FIFO order within a group."""


def describe(exc: BaseException) -> str:
    """A short cause: SQLite's error name, or the OS error's."""
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return str(name)
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return type(exc).__name__


class Store:
    """Runs functions of a SQLite connection on the store's thread; commits in groups."""

    def __init__(self, path: pathlib.Path, durability: Durability = "fsync") -> None:
        self.path = path
        self.durability = durability
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: The data directory's lock file, held (flock) while the store is open.
        self._lock: int | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        #: Whether writes are failing now (one log line per episode).
        self.failing = False
        #: Run on the store's thread after a rolled-back write, to reload in-memory state.
        self.after_rollback: Callable[[sqlite3.Connection], None] | None = None

    def open(self) -> None:
        """Open (or create) the database and start the store's thread; ``DataDirError``
        naming the directory when it cannot."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirUnusable(
                f"localsqs cannot use {self.path.parent} as its data directory: {describe(exc)}"
            ) from exc
        self._take_lock()
        self._thread = threading.Thread(target=self._run, name="localsqs-store", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._release_lock()
            raise self._unusable(self._failure) from self._failure

    def _take_lock(self) -> None:
        """Hold ``<database>.lock`` exclusively (released by the OS if the process dies);
        DataDirInUse when another engine holds it."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DataDirUnusable(
                f"localsqs cannot use {self.path.parent} as its data directory: {describe(exc)}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise DataDirInUse(
                f"another localsqs engine is using {self.path.parent}: stop it, or give this "
                "one another data directory"
            ) from None
        self._lock = fd

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _unusable(self, exc: BaseException) -> DataDirError:
        return DataDirError(
            f"localsqs cannot use its data directory {self.path.parent}: {describe(exc)} "
            "(is the disk full?)"
        )

    def close(self) -> None:
        """Finish queued work, then close the database."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None
        self._release_lock()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a transaction; returns once its changes are committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return await future

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'fsync' else 'NORMAL'}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache, then disk
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        conn.executescript(SCHEMA)
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to open()
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    break
                batch = [job]
                stop = False
                while len(batch) < _MAX_GROUP:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._commit(conn, batch)
                if stop:
                    break
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        try:
            results = self._apply(conn, batch)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:  # nothing of this group is written; the thread lives on
            self._rolled_back(conn, exc)
            results = [(None, exc)] * len(batch)
        else:
            if self.failing:
                self.failing = False
                log.warning("writes succeed again", extra={"count": len(batch)})
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, Any]]] = {}
        for (_, future, loop), (result, error) in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, settled)

    @staticmethod
    def _apply(
        conn: sqlite3.Connection, batch: list[Job]
    ) -> list[tuple[Any, BaseException | None]]:
        results: list[tuple[Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        for fn, _, _ in batch:
            conn.execute("SAVEPOINT job")
            try:
                results.append((fn(conn), None))
                conn.execute("RELEASE job")
            except Exception as exc:  # the job's own failure; others in the group go on
                if not conn.in_transaction:
                    # SQLite undid the whole transaction, the jobs before this one too: none
                    # of them may report success.
                    raise RolledBack(f"the transaction was rolled back ({describe(exc)})") from exc
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                results.append((None, exc))
        if not conn.in_transaction:
            raise RolledBack("the transaction was rolled back")
        return results

    def _rolled_back(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> None:
        # SQLite may have rolled back already (then ROLLBACK itself fails, harmlessly).
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if not self.failing:
            self.failing = True
            log.error(
                "cannot write to the data directory; answering with server errors until it can",
                extra={"error": describe(exc), "path": str(self.path.parent)},
            )
        if self.after_rollback is not None:
            with contextlib.suppress(sqlite3.Error):
                self.after_rollback(conn)


def _resolve(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
