"""The lean wire's HTTP/1.1 client: what it parses, how it keeps and drops connections,
and how each way an exchange can fail reads."""

import asyncio
import contextlib
import datetime
import ipaddress
import pathlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from aws.errors import NoAnswer, Unavailable
from aws.http import ConnectFailed, Dropped, HttpPool, ReadTimedOut, _Parser
from pool.sqs import SqsClient
from tests.support.serving import served

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10).filter(
    lambda n: n not in ("content-length", "transfer-encoding", "connection")
)


@st.composite
def answers(draw: st.DrawFn) -> tuple[bytes, int, dict[str, str], bytes, list[int]]:
    status = draw(st.sampled_from([200, 201, 400, 403, 404, 500, 503]))
    headers = draw(st.dictionaries(_TOKEN, st.text("abc 0123;=/", max_size=12), max_size=4))
    headers = {k: v.strip() for k, v in headers.items()}
    body = draw(st.binary(max_size=300))
    head = f"HTTP/1.1 {status} Whatever\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if draw(st.booleans()):
        sizes = draw(st.lists(st.integers(1, 40), max_size=6))
        chunks, rest = [], body
        for size in sizes:
            chunks.append(rest[:size])
            rest = rest[size:]
        chunks.append(rest)
        chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks if c)
        raw = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked + b"0\r\n\r\n"
    else:
        raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    if draw(st.booleans()):
        raw = b"HTTP/1.1 100 Continue\r\n\r\n" + raw
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    return raw, status, headers, body, cuts


@settings(max_examples=300, deadline=None)
@given(answers())
def test_an_answer_parses_to_what_was_sent_however_it_is_cut(
    answer: tuple[bytes, int, dict[str, str], bytes, list[int]],
) -> None:
    raw, status, headers, body, cuts = answer
    parser = _Parser()
    start = 0
    for cut in [*cuts, len(raw)]:
        assert not parser.done, "whole before its last byte"
        parser.feed(raw[start:cut])
        if cut == len(raw):
            break
        start = cut
    assert parser.done
    got_status, got_headers, got_body = parser.answer()
    assert (got_status, got_body) == (status, body)
    assert {k: got_headers[k] for k in headers} == headers
    assert parser.keep_alive
    assert not parser.buffer


def test_what_is_not_http_is_refused() -> None:
    for raw in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"):
        with pytest.raises(ValueError, match=r"not an HTTP/1 answer|without a colon"):
            _Parser().feed(raw)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server running ``handler`` per connection; yields (URL, connections made)."""
    connections: list[int] = []
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await handler(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"Content-Len")
    )
    return await reader.readexactly(length)


def pool(url: str, read_timeout_s: float = 2.0) -> HttpPool:
    return HttpPool(url, limit=4, connect_timeout_s=1.0, read_timeout_s=read_timeout_s)


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_connections_are_kept_and_reused_and_closed_when_the_server_says_so(
    loop_kind: str,
) -> None:
    """On asyncio's loop and on uvloop's, which the processes run on."""
    runner = uvloop.run if loop_kind == "uvloop" else asyncio.run
    runner(kept_and_closed())


async def kept_and_closed() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            body = await read_request(reader)
            close = b"close" in body
            extra = b"Connection: close\r\n" if close else b""
            writer.write(
                b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)
            )
            await writer.drain()
            if close:
                return

    async with raw_server(echo) as (url, connections):
        http = pool(url)
        for n in range(5):
            assert await http.request("POST", "/", {}, b"hello %d" % n) == (
                200,
                {"content-length": "7"},
                b"hello %d" % n,
            )
        assert len(connections) == 1
        assert (await http.request("POST", "/", {}, b"close"))[2] == b"close"
        assert (await http.request("POST", "/", {}, b"again"))[2] == b"again"
        assert len(connections) == 2
        http.close()


async def test_each_failure_reads_as_what_it_is() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with raw_server(cut_short) as (url, _):
        with pytest.raises(Dropped):
            await pool(url).request("POST", "/", {}, b"x")
    async with raw_server(silent) as (url, _):
        with pytest.raises(ReadTimedOut):
            await pool(url, read_timeout_s=0.3).request("POST", "/", {}, b"x")
    async with raw_server(silent) as (url, _):
        pass  # the port is free again: nothing listens there
    with pytest.raises(ConnectFailed):
        await pool(url).request("POST", "/", {}, b"x")


async def test_through_a_client_a_cut_answer_is_in_doubt_and_a_refusal_is_unavailable() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()

    async with (
        raw_server(cut_short) as (url, _),
        SqsClient(region="us-east-1", endpoint_url=url) as sqs,
    ):
        with pytest.raises(NoAnswer):
            await sqs.delete_batch(f"{url}/1/q.fifo", ["r"])
        bare = url
    async with SqsClient(region="us-east-1", endpoint_url=bare) as sqs:
        with pytest.raises(Unavailable) as refused:
            await sqs.delete_batch(f"{bare}/1/q.fifo", ["r"])
        assert not isinstance(refused.value, NoAnswer)


def certificate(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_tls_is_verified_against_the_ca_bundle(tmp_path: pathlib.Path) -> None:
    cert_file, key_file = certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/", answer)
    async with served(app, tls=context) as url:
        trusting = HttpPool(
            url, limit=2, connect_timeout_s=2, read_timeout_s=2, ca_bundle=str(cert_file)
        )
        assert (await trusting.request("POST", "/", {}, b"secret"))[2] == b"secret"
        trusting.close()
        with pytest.raises(ConnectFailed):  # an unknown issuer: never sent
            await pool(url).request("POST", "/", {}, b"secret")
