"""A background task that dies is loud and stops its process: never half alive."""

import asyncio
import io
import logging
import os
import sys
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from core import logs
from core.health import Health
from intake.app import create_app
from intake.appkeys import POOL
from intake.config import IntakeConfig
from metrics.intake import IntakeMetrics
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool
from tests.support.queues import count
from tests.support.smtp_sink import SmtpSink
from tests.test_cli import process_env

EMAIL = {"from": "a@example.test", "to": "b@example.test", "text": "fatal"}


@pytest.fixture
def log_lines() -> Any:
    stream = io.StringIO()
    handler = logs.setup("INFO", stream)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    logging.getLogger().removeHandler(handler)


def boom() -> Any:
    raise RuntimeError("a bug in the flusher")


async def test_a_dead_task_is_logged_with_its_traceback_and_turns_health_fatal(
    log_lines: Any,
) -> None:
    health = Health()

    async def dies() -> None:
        await asyncio.sleep(0)
        raise KeyError("secret@example.test")  # a message that must never be logged

    task = asyncio.create_task(dies())
    health.watch(task, "poller")
    assert await asyncio.wait_for(health.failed(), 5) == "poller"
    assert not health.ok
    [record] = [r for r in log_lines() if r["level"] == "error"]
    assert record["component"] == "poller"
    assert record["exception"] == "KeyError"
    assert "raise KeyError" in record["traceback"]
    assert "secret@example.test" not in orjson.dumps(record).decode().split("traceback")[0]


async def test_a_task_that_ends_when_allowed_to_is_not_a_failure() -> None:
    health = Health()
    stopping = False

    async def loop() -> None:
        await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    health.watch(task, "loop", may_end=lambda: stopping)
    stopping = True
    await task
    await asyncio.sleep(0)
    assert health.ok
    early = asyncio.create_task(loop())
    health.watch(early, "early")  # it may never end on its own
    await early
    await asyncio.sleep(0)
    assert health.failure == "early"


async def test_a_dead_flusher_turns_intake_unready_at_once_and_fails_its_callers(
    provisioned: PoolConfig, log_lines: Any
) -> None:
    registry = CollectorRegistry()
    pool = QueuePool(provisioned, PoolMetrics(registry))
    app = create_app(IntakeConfig(), pool, IntakeMetrics(registry), registry)
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        assert (await client.get("/readyz")).status == 200
        for shard in app[POOL]._shards:
            shard.send._take = boom  # type: ignore[method-assign]
        response = await client.post("/v1/emails", json=EMAIL)
        assert response.status == 503  # a 503, never a hang
        assert (await response.json())["error"]["code"] == "unavailable"
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["error"]["code"] == "component_failed"
    finally:
        await client.close()
    assert await count(provisioned) == 0
    died = [r for r in log_lines() if r["level"] == "error"]
    assert [r["component"] for r in died] == ["pool-flushers"]
    assert "a bug in the flusher" in died[0]["traceback"]  # the frame's source line


INJECTED = {
    # The intake's send flusher dies on its first batch (in ``take``).
    "intake": """
import aws.coalesce as c
_take = c.Coalescer._take
def take(self):
    if self.action == "SendMessageBatch":
        raise RuntimeError("injected flusher bug")
    return _take(self)
c.Coalescer._take = take
""",
    # The sender's receive loop dies on the first message it receives (in ``dispatch``).
    "sender": """
import sender.worker as w
def dispatch(self, messages):
    raise RuntimeError("injected worker bug")
w.Sender._dispatch = dispatch
""",
}


@pytest.mark.parametrize("process", ["intake", "sender"])
async def test_a_process_whose_background_task_dies_exits_non_zero(
    provisioned: PoolConfig, smtp_sink: SmtpSink, process: str
) -> None:
    env = {**os.environ, **process_env(provisioned, smtp_sink)}
    script = f"{INJECTED[process]}\nimport sys\nfrom mailpool.cli import main\n"
    script += f"sys.exit(main([{process!r}]))\n"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stderr is not None
    try:
        async with asyncio.timeout(20):
            banner = (await child.stdout.readline()).decode()
        if process == "intake":
            url = banner.split()[-1]
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"{url}/v1/emails", json=EMAIL) as response,
            ):
                assert response.status == 503
        else:
            async with QueuePool(provisioned, PoolMetrics(CollectorRegistry())) as pool:
                token = uuid.uuid4().hex
                await pool.send(Outgoing(body="not read", group=token, dedup_id=token))
        async with asyncio.timeout(30):
            code = await child.wait()
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    stderr = (await child.stderr.read()).decode()
    assert code == 1
    assert "died; exiting so that it is restarted" in stderr
    [record] = [orjson.loads(line) for line in stderr.splitlines()
                if line.startswith("{") and '"level":"error"' in line]  # fmt: skip
    assert record["msg"].startswith("background task died")
    assert ("in take" if process == "intake" else "in dispatch") in record["traceback"]
