"""S3 buckets and objects in the engine: the subset mailpool's body store uses.

An object's bytes live in a file of their own under ``<data>/objects/`` (written to a
temporary name, synced, renamed into place and the directory synced, before the answer, as
the queues' writes are); its metadata (size, ETag, type, checksum, time) is a row of the
SQLite store, written after the file, so a crash leaves at worst a file without a row, never
a row without its bytes. A bucket's lifecycle rules (expiration after some days, under a
prefix) are applied by the engine's sweep.
"""

import asyncio
import hashlib
import os
import pathlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import orjson

from localsqs.errors import S3Error
from localsqs.store import Store


@dataclass(frozen=True, slots=True)
class Stored:
    """An object's metadata."""

    size: int
    etag: str
    content_type: str
    checksum: dict[str, str]
    encryption: str | None
    modified: float
    file: str


def no_bucket(name: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, BucketName=name)


class Objects:
    """Buckets and objects with S3's semantics, durable in ``root`` and ``store``."""

    def __init__(self, store: Store, root: pathlib.Path, *, sync: bool = True) -> None:
        self.store = store
        self.root = root
        self.sync = sync

    async def start(self) -> None:
        """Make the objects' directory (the store holds their tables)."""
        self.root.mkdir(parents=True, exist_ok=True)

    # Buckets ---------------------------------------------------------------------------

    async def create_bucket(self, name: str) -> bool:
        """Create bucket ``name``; whether it is new (an existing one is kept as it is)."""

        def create(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO s3_buckets (name, created) VALUES (?, ?)",
                (name, time.time()),
            )
            return cursor.rowcount == 1

        return await self.store.call(create)

    async def require_bucket(self, name: str) -> None:
        """NoSuchBucket unless bucket ``name`` exists."""
        found = await self.store.call(
            lambda conn: conn.execute("SELECT 1 FROM s3_buckets WHERE name = ?", (name,)).fetchone()
        )
        if found is None:
            raise no_bucket(name)

    async def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket (BucketNotEmpty otherwise)."""

        def delete(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM s3_buckets WHERE name = ?", (name,)).fetchone() is None:
                raise no_bucket(name)
            if conn.execute("SELECT 1 FROM s3_objects WHERE bucket = ?", (name,)).fetchone():
                raise S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409)
            conn.execute("DELETE FROM s3_buckets WHERE name = ?", (name,))

        await self.store.call(delete)

    async def set_lifecycle(self, name: str, rules: list[dict[str, Any]]) -> None:
        """Replace bucket ``name``'s lifecycle rules."""

        def put(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE s3_buckets SET lifecycle = ? WHERE name = ?",
                (orjson.dumps(rules).decode(), name),
            ).rowcount

        if await self.store.call(put) == 0:
            raise no_bucket(name)

    async def lifecycle(self, name: str) -> list[dict[str, Any]]:
        """Bucket ``name``'s lifecycle rules (NoSuchLifecycleConfiguration if none)."""
        row = await self.store.call(
            lambda conn: conn.execute(
                "SELECT lifecycle FROM s3_buckets WHERE name = ?", (name,)
            ).fetchone()
        )
        if row is None:
            raise no_bucket(name)
        if row[0] is None:
            raise S3Error(
                "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist", 404
            )
        rules: list[dict[str, Any]] = orjson.loads(row[0])
        return rules

    # Objects ---------------------------------------------------------------------------

    async def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str,
        checksum: dict[str, str],
        encryption: str | None,
    ) -> Stored:
        """Store ``data`` as ``bucket``/``key``, replacing what was there."""
        await self.require_bucket(bucket)
        name = hashlib.sha256(f"{bucket}\0{key}\0{time.time_ns()}".encode()).hexdigest()
        await asyncio.to_thread(self._write, name, data)
        stored = Stored(
            len(data),
            hashlib.md5(data).hexdigest(),
            content_type,
            checksum,
            encryption,
            time.time(),
            name,
        )

        def record(conn: sqlite3.Connection) -> str | None:
            old = conn.execute(
                "SELECT file FROM s3_objects WHERE bucket = ? AND key = ?", (bucket, key)
            ).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO s3_objects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bucket,
                    key,
                    stored.size,
                    stored.etag,
                    content_type,
                    orjson.dumps(checksum).decode(),
                    encryption,
                    stored.modified,
                    name,
                ),
            )
            return None if old is None else str(old[0])

        try:
            replaced = await self.store.call(record)
        except BaseException:
            await asyncio.to_thread(self._unlink, name)
            raise
        if replaced is not None:
            await asyncio.to_thread(self._unlink, replaced)
        return stored

    async def head(self, bucket: str, key: str) -> Stored:
        """An object's metadata; NoSuchKey (or NoSuchBucket) when it is not there."""

        def find(conn: sqlite3.Connection) -> Any:
            if (
                conn.execute("SELECT 1 FROM s3_buckets WHERE name = ?", (bucket,)).fetchone()
                is None
            ):
                raise no_bucket(bucket)
            return conn.execute(
                "SELECT size, etag, content_type, checksum, encryption, modified, file "
                "FROM s3_objects WHERE bucket = ? AND key = ?",
                (bucket, key),
            ).fetchone()

        row = await self.store.call(find)
        if row is None:
            raise S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=key)
        size, etag, content_type, checksum, encryption, modified, file = row
        return Stored(
            size, etag, content_type, orjson.loads(checksum or "{}"), encryption, modified, file
        )

    async def get(self, bucket: str, key: str) -> tuple[Stored, bytes]:
        """An object's metadata and bytes."""
        stored = await self.head(bucket, key)
        return stored, await asyncio.to_thread((self.root / stored.file).read_bytes)

    async def delete(self, bucket: str, key: str) -> None:
        """Delete an object (none there is fine, as in S3)."""

        def forget(conn: sqlite3.Connection) -> str | None:
            if (
                conn.execute("SELECT 1 FROM s3_buckets WHERE name = ?", (bucket,)).fetchone()
                is None
            ):
                raise no_bucket(bucket)
            row = conn.execute(
                "DELETE FROM s3_objects WHERE bucket = ? AND key = ? RETURNING file", (bucket, key)
            ).fetchone()
            return None if row is None else str(row[0])

        file = await self.store.call(forget)
        if file is not None:
            await asyncio.to_thread(self._unlink, file)

    async def sweep(self, now: float | None = None) -> int:
        """Delete what the buckets' lifecycle rules expire; how many objects."""
        moment = time.time() if now is None else now

        def expire(conn: sqlite3.Connection) -> list[str]:
            files: list[str] = []
            for name, raw in conn.execute(
                "SELECT name, lifecycle FROM s3_buckets WHERE lifecycle IS NOT NULL"
            ).fetchall():
                for rule in orjson.loads(raw):
                    days = rule.get("days")
                    if rule.get("status") != "Enabled" or not days:
                        continue
                    cutoff = moment - float(days) * 86_400
                    prefix = rule.get("prefix", "")
                    rows = conn.execute(
                        "DELETE FROM s3_objects WHERE bucket = ? AND modified < ? "
                        "AND substr(key, 1, ?) = ? RETURNING file",
                        (name, cutoff, len(prefix), prefix),
                    ).fetchall()
                    files += [str(row[0]) for row in rows]
            return files

        files = await self.store.call(expire)
        for file in files:
            await asyncio.to_thread(self._unlink, file)
        return len(files)

    def size_bytes(self) -> int:
        """Bytes the objects take on disk."""
        return sum(entry.stat().st_size for entry in os.scandir(self.root) if entry.is_file())

    # Files -----------------------------------------------------------------------------

    def _write(self, name: str, data: bytes) -> None:
        temporary = self.root / f".{name}.tmp"
        try:
            with open(temporary, "wb") as out:
                out.write(data)
                out.flush()
                if self.sync:
                    os.fsync(out.fileno())
            os.replace(temporary, self.root / name)
            if self.sync:
                directory = os.open(self.root, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        except OSError as exc:
            self._unlink(temporary.name)
            raise S3Error(
                "InternalError",
                f"localsqs could not write the object: {os.strerror(exc.errno or 0)}",
                500,
            ) from exc

    def _unlink(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)
