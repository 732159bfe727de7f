"""mailpool-loadtest: its schedule is open-loop, its latencies run from the schedule (a
stalled server cannot hide), and on the local stack it times delivery through a webhook."""

import asyncio
import base64
import itertools
import json
import os
import pathlib
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from mailpool_client import loadtest
from mailpool_client.loadtest import Plan

from tests.support.serving import served


def test_a_rate_and_a_ramp_are_scheduled_ahead() -> None:
    steady = Plan(url="http://x", rate=200, seconds=3).schedule()
    assert len(steady) == 600
    assert steady[:3] == [0.0, 0.005, 0.01]
    ramp = Plan(url="http://x", rate=100, ramp_to=300, seconds=10).schedule()
    assert len(ramp) == 2000  # the mean rate, 200/s, for 10 s
    assert all(b > a for a, b in itertools.pairwise(ramp))
    first, last = ramp[1] - ramp[0], ramp[-1] - ramp[-2]
    assert first == pytest.approx(1 / 100, rel=0.05)
    assert last == pytest.approx(1 / 300, rel=0.05)
    bursts = Plan(url="http://x", rate=1000, seconds=1, burst=8).schedule()
    assert len(bursts) == 1000  # the same rate, eight at once every 8 ms (hey -c 8's shape)
    assert bursts[:9] == [0.0] * 8 + [0.008]


def test_sizes_mix_and_emails() -> None:
    plan = Plan(url="http://x", rate=1, seconds=1, sizes=loadtest._sizes("2k:1"), groups=3)
    doc = plan.email(4)
    assert len(doc["text"]) == 2000
    assert doc["group"] == "g1"
    assert loadtest._sizes("1k:80,10k:15,1m:5") == ((1000, 80.0), (10000, 15.0), (1000000, 5.0))


@pytest.fixture
async def stalling() -> AsyncIterator[tuple[str, dict[str, float]]]:
    """A bare endpoint that stops answering for 1 s, 1 s into the run."""
    clock: dict[str, float] = {"start": 0.0}

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        if not clock["start"]:
            clock["start"] = time.monotonic()
        elapsed = time.monotonic() - clock["start"]
        if 1.0 <= elapsed < 2.0:
            await asyncio.sleep(2.0 - elapsed)
        return web.json_response({"id": "x" * 32}, status=202)

    app = web.Application()
    app.router.add_post("/v1/emails", accept)
    async with served(app) as url:
        yield url, clock


async def test_a_stall_shows_in_the_latency_because_it_runs_from_the_schedule(
    stalling: tuple[str, dict[str, float]],
) -> None:
    url, _ = stalling
    plan = Plan(url=url, rate=100, seconds=3, max_in_flight=500)
    tally = loadtest.Tally()
    took = await loadtest.drive(plan, tally)
    figures = loadtest.result(plan, tally, took)
    assert figures["accepted"] == 300, "the schedule went on through the stall"
    # A third of the requests were due during the 1 s stall: the slowest waited ~1 s, and
    # the p90 shows it (a closed-loop generator would have sent ~1 request in that second).
    assert figures["accept_latency_ms"]["p99"] >= 800
    assert figures["accept_latency_ms"]["p90"] >= 300
    assert figures["accept_latency_ms"]["p50"] < 300
    # The requests left on time: the server, not the generator, held them up.
    assert figures["send_lag_ms"]["p99"] < 50
    assert loadtest.lag_warning(figures) is None


def test_a_generator_late_on_its_schedule_says_so() -> None:
    figures = {"send_lag_ms": {"p99": 12.0}, "accept_latency_ms": {"p99": 30.0}}
    warning = loadtest.lag_warning(figures)
    assert warning is not None
    assert "12.0 ms late" in warning
    assert "--senders" in warning
    quiet = {"send_lag_ms": {"p99": 0.4}, "accept_latency_ms": {"p99": 2.0}}
    assert loadtest.lag_warning(quiet) is None  # under a millisecond: noise


async def test_sender_processes_share_the_schedule_and_report_together(
    stalling: tuple[str, dict[str, float]], tmp_path: pathlib.Path
) -> None:
    url, _ = stalling
    out = tmp_path / "result.json"
    tester = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailpool_client.loadtest", url, "--rate", "100", "--seconds", "1",
        "--senders", "2", "--quiet", "--json", str(out), stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await asyncio.wait_for(tester.wait(), 60) == 0
    figures = json.loads(out.read_text())
    assert figures["requests"] == figures["accepted"] == 100
    assert figures["refusals"] == {}
    assert set(figures["send_lag_ms"]) == {"p50", "p90", "p99", "p99.9"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
async def test_on_the_local_stack_it_times_delivery_through_its_webhook(
    tmp_path: pathlib.Path,
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    hook = free_port()
    env = {
        **os.environ,
        "MAILPOOL_LOG_LEVEL": "WARNING",
        "MAILPOOL_WEBHOOK_URL": f"http://127.0.0.1:{hook}/",
        "MAILPOOL_WEBHOOK_SECRET": secret,
    }
    dev = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailpool", "dev",
        "--port", "0", "--metrics-port", "0", "--sqs-port", "0", "--smtp-port", "0",
        "--webhooks-metrics-port", "0",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert dev.stdout is not None
    try:
        banner = ""
        async with asyncio.timeout(30):
            while "Ctrl-C" not in banner:
                banner += (await dev.stdout.readline()).decode()
        assert f"http://127.0.0.1:{hook}/ (default, from MAILPOOL_WEBHOOK_URL)" in banner
        match = re.search(r"intake\s+(http://127\.0\.0\.1:\d+)", banner)
        assert match
        out = tmp_path / "result.json"
        tester = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailpool_client.loadtest", match.group(1),
            "--rate", "50", "--seconds", "3", "--webhook-port", str(hook),
            "--webhook-secret", secret, "--settle", "20", "--quiet", "--json", str(out),
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await asyncio.wait_for(tester.wait(), 60) == 0
    finally:
        dev.send_signal(signal.SIGINT)
        await asyncio.wait_for(dev.wait(), 60)
    figures = json.loads(out.read_text())
    assert figures["offered_per_s"] == 50
    assert figures["accepted"] == figures["delivered"] == 150
    assert figures["refusals"] == {}
    assert figures["bad_webhooks"] == 0
    for key in ("accept_latency_ms", "delivery_latency_ms", "event_arrival_latency_ms"):
        assert set(figures[key]) == {"p50", "p90", "p99", "p99.9"}
        assert 0 < figures[key]["p50"] <= figures[key]["p99.9"]
    assert figures["delivery_latency_ms"]["p50"] <= figures["event_arrival_latency_ms"]["p50"]
