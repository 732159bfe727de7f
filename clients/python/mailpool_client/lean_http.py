"""A lean HTTP/1.1 client for the load generator's hot path: one request's bytes built
ahead, written in one call on a kept-alive connection, the answer parsed from the buffer.

Measured: aiohttp's client spends ~150-300 µs of CPU a request, so a burst of 40 from one
process leaves over 6 ms after its schedule, and the generator times itself. This client
does the same exchange in a small fraction of that. It speaks just what the generator
needs (a request with a body, answers framed by Content-Length, chunked, or the
connection's close) and is held to aiohttp's client by a property test
(``tests/client/test_lean_http.py``).
"""

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

#: An answer's head may not be longer than this (aiohttp's default line and field limits).
MAX_HEAD = 64 * 1024


class ProtocolError(ConnectionError):
    """The server's answer is not HTTP/1.1 as this client reads it."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: its status and body, and when the request was handed to the socket."""

    status: int
    body: bytes
    sent_at: float


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.open = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        #: The answer's status, Content-Length, whether chunked, whether kept alive.
        self._head: tuple[int, int | None, bool, bool] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        if self._waiter is not None and not self._waiter.done():
            if self._head is not None and self._head[1] is None and not self._head[2]:
                self._finish(bytes(self._buffer), keep=False)  # framed by the close
            else:
                self._waiter.set_exception(exc or ConnectionResetError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            self._parse()
        except ProtocolError as exc:
            self._waiter.set_exception(exc)
            self.close()

    def send(self, data: bytes) -> "asyncio.Future[tuple[int, bytes, bool]]":
        """Write a whole request; the future of its (status, body, keep-alive)."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._head = None
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.open = False
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    raise ProtocolError("the answer's head is too long")
                return
            self._head = _read_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        _status, length, chunked, keep = self._head
        if chunked:
            body = _dechunk(self._buffer)
            if body is not None:
                self._finish(body, keep)
        elif length is not None and len(self._buffer) >= length:
            self._finish(bytes(self._buffer[:length]), keep)

    def _finish(self, body: bytes, keep: bool) -> None:
        assert self._waiter is not None
        assert self._head is not None
        self._buffer.clear()
        self._waiter.set_result((self._head[0], body, keep))


def _read_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """(status, Content-Length or None, chunked, keep-alive) of an answer's head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError("not an HTTP/1.x status line")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError("a header line without a colon")
        key, value = name.strip().lower(), value.strip()
        if key == b"content-length":
            if not value.isdigit():
                raise ProtocolError("a Content-Length that is not a number")
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = value.lower().endswith(b"chunked")
        elif key == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            keep = b"close" not in tokens and (keep or b"keep-alive" in tokens)
    if status in (204, 304) or 100 <= status < 200:
        length, chunked = 0, False
    return status, length, chunked, keep


def _dechunk(buffer: bytearray) -> bytes | None:
    """The body of a whole chunked answer in ``buffer``; None while it is incomplete."""
    parts: list[bytes] = []
    at = 0
    while True:
        end = buffer.find(b"\r\n", at)
        if end < 0:
            return None
        size_text = bytes(buffer[at:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("a chunk size that is not hexadecimal") from None
        at = end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)
            return b"".join(parts) if trailer_end >= 0 else None
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


class LeanClient:
    """POSTs to one origin over a pool of kept-alive connections (opened as needed)."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, *, timeout_s: float = 60.0
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/")
        authority = parts.netloc.rpartition("@")[2]
        fixed = {"Host": authority, **(headers or {})}
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode("latin-1")
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()
        self._timeout_s = timeout_s

    def build(self, method: str, path: str, body: bytes, content_type: str) -> bytes:
        """A request's bytes, whole, ready to write."""
        line = f"{method} {self._prefix}{path} HTTP/1.1\r\n".encode("latin-1")
        length = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        return line + self._headers + length.encode("latin-1") + body

    async def send(self, request: bytes) -> Answer:
        """Send a request built by ``build``; its answer. ConnectionError (or TimeoutError)
        when the exchange fails."""
        connection = await self._connection()
        sent_at = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s):
                status, body, keep = await connection.send(request)
        except BaseException:
            self._drop(connection)
            raise
        if keep and connection.open:
            self._idle.append(connection)
        else:
            self._drop(connection)
        return Answer(status, body, sent_at)

    async def warm(self, count: int) -> None:
        """Open ``count`` idle connections now, so that no timed request waits for one."""
        opened = await asyncio.gather(*(self._open() for _ in range(count)), return_exceptions=True)
        self._idle += [c for c in opened if isinstance(c, _Connection)]

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.open:
                return connection
            self._all.discard(connection)
        return await self._open()

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection, self._host, self._port, ssl=self._ssl
        )
        self._all.add(connection)
        return connection

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._all.discard(connection)

    async def aclose(self) -> None:
        """Close every connection."""
        for connection in self._all:
            connection.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports close
