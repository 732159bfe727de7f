"""The load generator's lean HTTP client, held to aiohttp's: for any answer a server gives
(status, body, framed by Content-Length, chunked, or the connection's close), both read
the same status and body, and the lean client goes on over a kept-alive connection."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailpool_client.lean_http import LeanClient, ProtocolError, _read_head

from tests.support.serving import served

ANSWERS = st.tuples(
    st.sampled_from([200, 201, 202, 204, 400, 401, 404, 409, 413, 422, 429, 500, 503]),
    st.binary(max_size=5000),
    st.sampled_from(["length", "chunked", "close"]),
)


async def answer(request: web.Request) -> web.StreamResponse:
    """Answers as the request's headers say: status, framing; the body is the request's."""
    body = await request.read()
    status = int(request.headers["X-Status"])
    framing = request.headers["X-Framing"]
    if status == 204:
        return web.Response(status=204)
    if framing == "length":
        return web.Response(status=status, body=body)
    response = web.StreamResponse(status=status)
    if framing == "chunked":
        response.enable_chunked_encoding()
    else:
        response.force_close()  # no length: the body ends with the connection
        response.headers["Connection"] = "close"
    await response.prepare(request)
    for at in range(0, len(body), 700):  # several writes: several chunks, several reads
        await response.write(body[at : at + 700])
    await response.write_eof()
    return response


@pytest.fixture
async def origin() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/echo", answer)
    async with served(app) as url:
        yield url


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answers=st.lists(ANSWERS, min_size=1, max_size=4))
async def test_the_lean_client_reads_what_aiohttp_reads(
    origin: str, answers: list[tuple[int, bytes, str]]
) -> None:
    async with aiohttp.ClientSession() as http:
        for status, body, framing in answers:
            headers = {"X-Status": str(status), "X-Framing": framing}
            async with http.post(f"{origin}/echo", data=body, headers=headers) as reference:
                expected: tuple[Any, ...] = (reference.status, await reference.read())
            fixed = LeanClient(origin, headers)
            try:
                got = await fixed.send(fixed.build("POST", "/echo", body, "application/json"))
            finally:
                await fixed.aclose()
            assert (got.status, got.body) == expected
        # One client over one connection, answer after answer while it is kept alive.
        for status, body, framing in answers:
            keep = LeanClient(origin, {"X-Status": str(status), "X-Framing": framing})
            try:
                got = await keep.send(keep.build("POST", "/echo", body, "text/plain"))
                again = await keep.send(keep.build("POST", "/echo", body, "text/plain"))
            finally:
                await keep.aclose()
            assert (got.status, got.body) == (again.status, again.body)


async def test_a_server_gone_mid_answer_is_a_connection_error() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{"id"')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = LeanClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectionError):
            await client.send(client.build("POST", "/", b"{}", "application/json"))
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


def test_a_head_that_is_not_http_is_refused() -> None:
    assert _read_head(b"HTTP/1.1 202 Accepted\r\nContent-Length: 5") == (202, 5, False, True)
    assert _read_head(b"HTTP/1.0 200 OK") == (200, None, False, False)
    assert _read_head(b"HTTP/1.1 200 OK\r\nConnection: close")[3] is False
    for head in (b"SSH-2.0-OpenSSH", b"HTTP/1.1 abc", b"HTTP/1.1 200 OK\r\nno colon",
                 b"HTTP/1.1 200 OK\r\nContent-Length: x"):  # fmt: skip
        with pytest.raises(ProtocolError):
            _read_head(head)
