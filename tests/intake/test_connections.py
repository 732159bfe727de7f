"""What intake does with the connection itself: which hosts it answers on loopback, and
requests whose headers or body never finish, or whose client goes away."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client import CollectorRegistry

from intake.config import IntakeConfig
from intake.service import IntakeService
from pool.config import PoolConfig
from tests.intake.test_api import EMAIL
from tests.support.queues import count, drain


@pytest.fixture
async def intake(provisioned: PoolConfig) -> AsyncIterator[IntakeService]:
    config = IntakeConfig(port=0, read_timeout_s=0.5, idle_timeout_s=1.0,
                          allowed_hosts=("mail.example.test",))  # fmt: skip
    async with IntakeService(provisioned, config) as service:
        yield service


async def exchange(
    service: IntakeService, raw: bytes, timeout_s: float = 5.0, *, until_closed: bool = True
) -> bytes:
    """Send ``raw`` on a fresh connection; everything the server sends until it closes (or
    its first answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
    try:
        writer.write(raw)
        await writer.drain()
        async with asyncio.timeout(timeout_s):
            return await (reader.read() if until_closed else reader.read(65536))
    finally:
        writer.close()


def request(body: bytes, *, host: str = "127.0.0.1", length: int | None = None) -> bytes:
    return (
        f"POST /v1/emails HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    ).encode() + body


def requests_counted(registry: CollectorRegistry, status: str) -> float:
    value = registry.get_sample_value(
        "mailpool_http_requests_total", {"route": "/v1/emails", "status": status}
    )
    return value or 0.0


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost:8080", "[::1]:80", "LOCALHOST", "mail.example.test"]
)
async def test_loopback_names_and_the_allowed_ones_are_answered(
    intake: IntakeService, host: str
) -> None:
    answer = await exchange(intake, request(orjson.dumps(EMAIL), host=host).replace(
        b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1))  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 202")


@pytest.mark.parametrize("host", ["attacker.example", "127.0.0.1.nip.io", ""])
async def test_a_rebound_page_names_its_own_host_and_gets_421(
    intake: IntakeService, provisioned: PoolConfig, host: str
) -> None:
    async with aiohttp.ClientSession() as http:
        for method, path in (("POST", "/v1/emails"), ("GET", "/v1/suppressions")):
            async with http.request(method, f"{intake.url}{path}", json=EMAIL,
                                    headers={"Host": host}) as response:  # fmt: skip
                assert response.status == 421
                assert (await response.json())["error"]["field"] == "Host"
    assert await count(provisioned) == 0
    assert requests_counted(intake.registry, "421") == 1  # /v1/emails, in the metrics too


async def test_a_body_that_never_finishes_gets_408(
    intake: IntakeService, provisioned: PoolConfig
) -> None:
    answer = await exchange(intake, request(b'{"from": "a', length=500), until_closed=False)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"request_timeout"' in answer
    assert await count(provisioned) == 0


async def test_headers_that_never_finish_are_cut_off(intake: IntakeService) -> None:
    stalled = b"POST /v1/emails HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await exchange(intake, stalled, timeout_s=10.0)
    assert answer == b""  # closed, with nothing to answer: no request was made
    assert loop.time() - started < 5.0


async def test_a_client_gone_mid_body_is_no_server_error(
    intake: IntakeService, provisioned: PoolConfig, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", intake.port)
        writer.write(request(b'{"from": ', length=400))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
    await asyncio.sleep(0.3)
    registry = intake.registry
    assert requests_counted(registry, "499") == 3
    assert requests_counted(registry, "500") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert await count(provisioned) == 0


async def test_a_single_key_never_names_an_entry_of_a_batch(
    intake: IntakeService, provisioned: PoolConfig
) -> None:
    # Without the state store ids derive from the key: "order-7:0" once named entry 0 of a
    # batch keyed "order-7", whose 202 then stood for an email that was never queued.
    async with aiohttp.ClientSession() as http:

        async def post(path: str, doc: Any, key: str) -> Any:
            headers = {"Idempotency-Key": key}
            async with http.post(f"{intake.url}{path}", json=doc, headers=headers) as response:
                assert response.status == 202
                return await response.json()

        single = await post("/v1/emails", {**EMAIL, "subject": "single"}, "order-7:0")
        batch = await post("/v1/emails/batch", [{**EMAIL, "subject": "batch"}], "order-7")
    assert single["id"] != batch["results"][0]["id"]
    assert len(await drain(provisioned)) == 2
