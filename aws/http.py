"""A minimal HTTP/1.1 client for the lean wire: kept-alive connections to one endpoint.

aiohttp's request path cost the lean wire more than everything else of a call together
(about 200 of 300 CPU-µs, profiled); an AWS call needs little of it: one POST with a
body, one answer with ``Content-Length`` (or chunked), no redirects, no cookies, no
compression. This module writes the request in one buffer and parses the answer in a
protocol, over connections kept per endpoint (at most ``limit``; TLS for ``https``).
A property test holds the parser to what it is fed, cut anywhere
(``tests/aws/test_http.py``), and every suite that speaks AWS runs over it.

Failures: ``ConnectFailed`` (no connection: the request never left), ``ConnectTimedOut``,
``ReadTimedOut`` and ``Dropped`` (the connection ended before a whole answer: the request
may have been taken). ``aws.wire`` raises them as botocore's exceptions.
"""

import asyncio
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit


class HttpError(Exception):
    """An exchange that did not complete."""


class ConnectFailed(HttpError):
    """No connection could be made: the request never left."""


class ConnectTimedOut(ConnectFailed):
    """The connection was not made in time."""


class ReadTimedOut(HttpError):
    """No whole answer came in time; the request may have been taken."""


class Dropped(HttpError):
    """The connection ended (or spoke nonsense) before a whole answer."""


Answer = tuple[int, dict[str, str], bytes]


class _Parser:
    """An HTTP/1.1 response, parsed from the bytes as they come."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self._length: int | None = None
        self._chunked = False
        self._body = bytearray()
        self.keep_alive = True
        self.done = False

    def feed(self, data: bytes) -> None:
        """Take more bytes; ``done`` once the answer is whole (ValueError: not HTTP)."""
        self.buffer += data
        if not self.status and not self._head():
            return
        if self._chunked:
            self._chunks()
        elif self._length is not None and len(self.buffer) >= self._length:
            self._body = self.buffer[: self._length]
            del self.buffer[: self._length]
            self.done = True

    def _head(self) -> bool:
        """Parse the status line and headers once they are all here; whether they were."""
        while not self.status:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    raise ValueError("headers too long")
                return False
            lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            del self.buffer[: end + 4]
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError("not an HTTP/1 answer")
            status = int(rest[:3])
            self.headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ValueError("a header line without a colon")
                name, value = name.strip().lower(), value.strip()
                seen = self.headers.get(name)
                self.headers[name] = value if seen is None else f"{seen}, {value}"
            if status >= 200:  # 1xx: an interim answer, the real one follows
                self.status = status
                self._framing(version)
        return True

    def _framing(self, version: str) -> None:
        """How the body ends: its length, chunks, or the connection's end."""
        connection = self.headers.get("connection", "").lower()
        self.keep_alive = version == "HTTP/1.1" and "close" not in connection
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if self._chunked:
            return
        if "content-length" in self.headers:
            self._length = int(self.headers["content-length"])
        elif self.status in (204, 304):
            self._length = 0
        else:
            self.keep_alive = False

    def _chunks(self) -> None:
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
            if size == 0:
                trailer = self.buffer.find(b"\r\n\r\n", end)
                if trailer < 0:
                    return
                del self.buffer[: trailer + 4]
                self.done = True
                return
            if len(self.buffer) < end + 2 + size + 2:
                return
            self._body += self.buffer[end + 2 : end + 2 + size]
            del self.buffer[: end + 2 + size + 2]

    def eof(self) -> None:
        """The connection ended: a body that runs to the end is whole now."""
        if self.status and not self._chunked and self._length is None:
            self._body = self.buffer
            self.done = True

    def answer(self) -> Answer:
        return self.status, self.headers, bytes(self._body)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser: _Parser | None = None
        self._waiter: asyncio.Future[Answer] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are transports without deriving from asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._parser = _Parser()
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        parser, waiter = self._parser, self._waiter
        if parser is None or waiter is None or waiter.done():
            self._close()  # bytes nobody asked for: this connection is not to be trusted
            return
        try:
            parser.feed(data)
        except (ValueError, IndexError) as exc:
            waiter.set_exception(Dropped(f"a malformed answer: {exc}"))
            self._close()
            return
        if parser.done:
            self._parser = self._waiter = None
            if not parser.keep_alive or parser.buffer:
                self._close()
            waiter.set_result(parser.answer())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        parser, waiter = self._parser, self._waiter
        if parser is not None and waiter is not None and not waiter.done():
            parser.eof()
            if parser.done:
                waiter.set_result(parser.answer())
            else:
                waiter.set_exception(Dropped("the connection ended before a whole answer"))

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class HttpPool:
    """Kept-alive connections to the endpoint of ``url`` (at most ``limit`` at once); TLS
    verified against the system's CAs or ``ca_bundle``."""

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_bundle: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.secure else 80)
        default = 443 if self.secure else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = host if self.port == default else f"{host}:{self.port}"
        self._ssl = ssl.create_default_context(cafile=ca_bundle) if self.secure else None
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._idle: deque[_Connection] = deque()
        self._slots = asyncio.Semaphore(limit)
        self._open: set[_Connection] = set()

    async def request(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        """One exchange: (status, headers with lower-case names, body)."""
        head = [f"{method} {path} HTTP/1.1\r\nHost: {self._host_header}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        head.append(f"Content-Length: {len(body)}\r\n\r\n")
        request = "".join(head).encode("latin-1") + body
        async with self._slots:
            connection = await self._connection()
            try:
                async with asyncio.timeout(self._read_timeout_s):
                    answer = await connection.send(request)
            except TimeoutError:
                connection.abort()
                raise ReadTimedOut(f"no answer within {self._read_timeout_s} s") from None
            except BaseException:
                connection.abort()
                raise
            finally:
                if connection.closed:
                    self._open.discard(connection)
            if not connection.closed:
                self._idle.append(connection)
            return answer

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            self._open.discard(connection)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError:
            raise ConnectTimedOut(f"no connection within {self._connect_timeout_s} s") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect: {type(exc).__name__}") from exc
        self._open.add(connection)
        return connection

    def close(self) -> None:
        """Close every connection."""
        for connection in list(self._open):
            connection.abort()
        self._open.clear()
        self._idle.clear()
