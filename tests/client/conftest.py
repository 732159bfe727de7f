"""A real intake (state store on) on the embedded engine, and a fault proxy in front of it."""

import asyncio
import contextlib
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from intake.config import IntakeConfig
from intake.service import IntakeService
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from state.config import StateConfig
from state.table import StateTable
from tests.support.engines import ThreadedLocalSqs
from tests.support.serving import served


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("client-engine")))
    yield server.start()
    server.stop()


@dataclass
class Stack:
    url: str
    pool: PoolConfig
    state: StateConfig


@pytest.fixture
async def stack(engine: str) -> AsyncIterator[Stack]:
    """Intake with the state store on, its pool and table of its own."""
    prefix = f"c{uuid.uuid4().hex[:10]}"
    pool = PoolConfig(prefix=prefix, shards=2, endpoint_url=engine, region="us-east-1")
    state = StateConfig(
        enabled=True,
        table=f"{prefix}-state",
        endpoint_url=engine,
        region="us-east-1",
        secret=b"c" * 32,
        suppression_cache_s=0.0,
    )
    async with SqsClient.from_config(pool) as sqs:
        await provision(sqs, pool)
    async with StateTable(state) as table:
        await table.provision()
    async with IntakeService(pool, IntakeConfig(port=0), state=state) as intake:
        yield Stack(intake.url, pool, state)


@dataclass
class Faults:
    """What the proxy does to the next requests, in order; then it forwards faithfully."""

    plan: list[str] = field(default_factory=list)
    #: Every n-th POST has its answer dropped after intake answered (0: none).
    drop_every: int = 0
    seen: int = 0
    done: dict[str, int] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def fault_proxy(target: str) -> AsyncIterator[tuple[str, Faults]]:
    """Forwards to ``target``; a planned fault instead where ``Faults`` says: ``drop``
    (forward, then cut the connection before the answer), ``reset`` (cut it before
    forwarding), ``503``, ``503-wait`` (with Retry-After: 0.2), ``in_doubt`` (forward, then
    answer 503 in_doubt), ``429``."""
    faults = Faults()
    http = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        faults.seen += 1
        fault = faults.plan.pop(0) if faults.plan else ""
        if not fault and faults.drop_every and request.method == "POST":
            fault = "drop" if faults.seen % faults.drop_every == 0 else ""
        faults.done[fault or "forwarded"] = faults.done.get(fault or "forwarded", 0) + 1
        if fault == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if fault in ("503", "503-wait", "429"):
            status = 429 if fault == "429" else 503
            code = "rate_limited" if status == 429 else "unavailable"
            headers = {"Retry-After": "0.2"} if fault != "503" else {}
            error = {"error": {"code": code, "message": "injected", "field": None}}
            return web.json_response(error, status=status, headers=headers)
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with http.request(
            request.method, target + request.path_qs, data=body, headers=headers
        ) as r:
            answer = await r.read()
            status = r.status
        if fault == "drop":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if fault == "in_doubt":
            error = {"error": {"code": "in_doubt", "message": "injected", "field": None}}
            return web.json_response(error, status=503, headers={"Retry-After": "0"})
        return web.Response(status=status, body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    try:
        async with served(app) as url:
            yield url, faults
    finally:
        await http.close()
        await asyncio.sleep(0)
