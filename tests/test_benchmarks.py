"""Each benchmark runs at a tiny size (the figures live in benchmarks/RESULTS.md)."""

import concurrent.futures
import contextlib
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.load import run
from benchmarks.steps import INTAKE_STEPS, REST, SENDER_STEPS, shares, step_of
from intake.config import IntakeConfig
from intake.service import IntakeService
from pool.config import PoolConfig

#: The process group of the last benchmark started (tests of the cleanup read it).
started: list[int] = []


def bench(command: str, timeout: float) -> str:
    """Run ``python -m benchmarks.<command>`` (words split on spaces); its standard output.

    It runs in a process group of its own, killed whole if the run fails or is cut short (a
    timeout, the suite's per-test limit): a benchmark's engines, intakes and senders never
    outlive it."""
    module, *args = command.split()
    argv = [sys.executable, "-m", f"benchmarks.{module}", *args]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        started.append(process.pid)
        try:
            out, err = process.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, argv, out, err)
    return out


def test_a_benchmark_cut_short_leaves_no_process_behind() -> None:
    # A run far longer than the timeout: it is cut short once its processes are up.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cut = pool.submit(bench, "e2e --messages 100000 --seconds 600 --runs 5 --shards 2", 15)
        group = wait_for_children()
        with pytest.raises(subprocess.TimeoutExpired):
            cut.result()
    time.sleep(0.5)
    assert living(group) == [], "a benchmark's process outlived it"


def wait_for_children(deadline_s: float = 12) -> int:
    """The group of the benchmark just started, once it has started a process of its own."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if started and len(living(started[-1])) > 1:
            return started[-1]
        time.sleep(0.05)
    raise AssertionError("the benchmark started no process of its own")


def living(group: int) -> list[int]:
    """The processes of ``group`` still running (killed ones awaiting a reaper aside)."""
    found = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_engines_benchmark_runs() -> None:
    out = bench(
        "engines --engines localsqs --clients 1 --concurrency 2 --seconds 0.5 --runs 1", timeout=120
    )
    assert "medians of 1 runs" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("localsqs "))
    send_per_s = float(row.split()[1])
    assert send_per_s > 0


def test_scaling_benchmark_runs() -> None:
    out = bench("scaling --shards 1,2 --quota 20 --seconds 0.5 --runs 1 --senders 40", timeout=120)
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == [1, 2]
    assert all(float(row[1]) > 0 for row in rows)


def test_end_to_end_benchmark_runs() -> None:
    out = bench("e2e --messages 40 --seconds 0.5 --runs 1 --shards 2", timeout=180)
    assert "medians of 1 runs" in out
    assert "per core" in out


def test_intake_benchmark_runs() -> None:
    out = bench("intake --seconds 0.5 --runs 1 --concurrency 4", timeout=180)
    assert "medians of 1 runs" in out
    intake_rate = next(line for line in out.splitlines() if "intake/s:" in line)
    assert float(intake_rate.split()[-1]) > 0


def test_peer_benchmark_runs() -> None:
    out = bench(
        "peer --emails 20 --runs 1 --clients 4 --celery-concurrency 1 --timeout 60", timeout=180
    )
    line = next(line for line in out.splitlines() if line.startswith("medians of 1 runs"))
    rates = dict(re.findall(r"(mailpool|celery) (\d+) delivered/s", line))
    assert int(rates["mailpool"]) > 0
    assert int(rates["celery"]) > 0
    own = re.search(r"each run's own ratio: (\d+\.\d+)x at the median \(runs (\d+\.\d+);", out)
    assert own is not None
    assert own.group(1) == own.group(2)  # one run: its own ratio is the median


def test_backlog_benchmark_runs() -> None:
    out = bench("backlog --backlog 200 --measure 40 --runs 1 --fillers 1", timeout=180)
    assert "backlog: 200 envelopes queued" in out
    ratio = re.search(r"CPU per message (\d+\.\d+)", out)
    assert ratio is not None
    assert float(ratio.group(1)) > 0


def test_soak_benchmark_runs() -> None:
    out = bench("soak --seconds 2 --rate 20 --every 0.5", timeout=120)
    assert "sender RSS MiB" in out
    assert "non-202 0" in out


def test_overload_benchmark_runs() -> None:
    out = bench(
        "overload --quota 5 --shards 1 --seconds 0.5 --runs 1 --clients 4 --deadline 0.5",
        timeout=180,
    )
    assert "medians of 1 runs" in out
    [ten] = [line.split() for line in out.splitlines() if line.strip().startswith("10x")]
    assert float(ten[1]) > 0  # offered
    assert float(ten[2]) > 0  # accepted


def test_events_benchmark_runs() -> None:
    out = bench("events --messages 30 --events 20 --runs 1", timeout=180)
    line = next(line for line in out.splitlines() if line.startswith("medians of 1 runs"))
    ratio = re.search(r"ratio (\d+\.\d+)", line)
    rate = re.search(r"webhooks process (\d+) deliveries/s", line)
    assert ratio is not None
    assert rate is not None
    assert float(ratio.group(1)) > 0
    assert int(rate.group(1)) > 0


def test_contention_benchmark_runs() -> None:
    out = bench("contention --rate 20 --seconds 1 --burst 5 --runs 1", timeout=180)
    rows = [line for line in out.splitlines() if "duplicates:" in line and "of 0 %" in line]
    assert len(rows) == 3
    assert all("0 refused in all, 0 bursts with more than one id" in row for row in rows)


def test_state_benchmark_runs() -> None:
    out = bench("state --messages 20 --requests 20 --seconds 0.2 --runs 1 --status 2", timeout=180)
    line = next(line for line in out.splitlines() if line.startswith("medians of 1 runs"))
    ratio = re.search(r"ratio (\d+\.\d+) \(target", line)
    calls = re.search(r"(\d+\.\d+) DynamoDB calls per email", line)
    assert ratio is not None
    assert float(ratio.group(1)) > 0
    assert calls is not None
    assert float(calls.group(1)) > 0
    assert "status: 2/2 readable at once" in out
    assert re.search(r"engine GetItem: [1-9]\d* operations/s", out)


def test_attachments_benchmark_runs() -> None:
    out = bench("attachments --emails 20 --runs 1 --renders 5 --large-mib 1", timeout=180)
    line = next(line for line in out.splitlines() if line.startswith("medians of 1 runs"))
    ratio = re.search(r"ratio (\d+\.\d+)", line)
    assert ratio is not None
    assert float(ratio.group(1)) > 0
    assert re.search(r"render: \d+\.\d CPU-ms per MB with the attachment", out)
    assert re.search(r"memory: a 1 MiB email .* peak \d+\.\dx", out)


async def test_load_benchmark_runs(provisioned: PoolConfig) -> None:
    async with IntakeService(provisioned, IntakeConfig(port=0)) as intake:
        result = await run(intake.url, concurrency=2, seconds=0.5)
    assert result["accepted_per_s"] > 0
    assert result["non_202"] == 0


def test_wire_benchmark_runs() -> None:
    out = bench("wire --calls 10 --emails 30 --requests 30 --runs 1", timeout=240)
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line.split() and line.split()[0] in ("SendMessageBatch", "BatchWriteItem", "SendEmail")
    }
    assert set(rows) == {"SendMessageBatch", "BatchWriteItem", "SendEmail"}
    assert all(float(botocore) > 0 and float(lean) > 0 for botocore, lean, _ in rows.values())
    assert re.search(r"lean: keyed intake with the state store at \d\.\d\d of keyless", out)
    assert re.search(r"lean: a key adds -?\d+ CPU-µs per email in intake, -?\d+ in the engine", out)


def test_writes_benchmark_prices_each_case() -> None:
    out = bench("writes --items 20 --prefill 50 --runs 1", timeout=120)
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines()[2:]}
    cases = {(d, k) for d in ("fsync", "os") for k in ("random", "ordered")}
    assert set(rows) == cases
    assert all(len(costs) == 3 and all(float(c) > 0 for c in costs) for costs in rows.values())


def test_steps_put_each_sample_down_to_the_first_step_on_its_stack(tmp_path: Path) -> None:
    samples = tmp_path / "samples.txt"
    samples.write_text(
        "run (core/runtime.py:1);Sender._poll (sender/worker.py:9);SqsClient.receive (x:1) 6\n"
        "Sender._deliver (sender/worker.py:2);SmtpProvider.send (smtp.py:3) 3\n"
        "Runner.run (asyncio/runners.py:118) 1\n"
    )
    split = shares(samples, SENDER_STEPS)
    assert split["receive (ReceiveMessage)"] == 0.6
    assert split["SMTP"] == 0.3
    assert split[REST] == 0.1
    assert sum(split.values()) == pytest.approx(1.0)
    handler = "_handle (aiohttp/web_protocol.py:1);post_email (x:1);parse_email (core/envelope:2)"
    assert step_of(handler.split(";"), INTAKE_STEPS) == "validation"


def test_client_benchmark_runs() -> None:
    out = bench("client --requests 50 --concurrency 4 --runs 1", timeout=120)
    ratio = re.search(r"ratio (\d+\.\d+) \(target <= 1.5\)", out)
    assert ratio is not None
    assert float(ratio.group(1)) > 0


def test_generators_benchmark_runs() -> None:
    out = bench("generators --rate 200 --seconds 1 --runs 1 --capacity 500", timeout=120)
    assert re.search(r"mailpool-loadtest: \d+/s; accept latency ms p50", out)
    assert re.search(r"one mailpool-loadtest process drove \d+/s", out)


@pytest.mark.timeout(300)
def test_generators_benchmark_runs_on_the_whole_stack() -> None:
    out = bench(
        "generators --target stack --rate 40 --seconds 1 --runs 1 --workers 4 --capacity 500",
        timeout=280,
    )
    assert re.search(r"mailpool-loadtest --burst 4: \d+/s; accept latency ms p50 .* send lag", out)
    assert "mailpool-loadtest --burst 4 against hey -c 4: rate" in out or "not installed" in out


@pytest.mark.timeout(300)
def test_lambda_worker_benchmark_runs() -> None:
    out = bench("lambda_worker --messages 30 --duplicates 30 --runs 1", timeout=280)
    assert "medians of 1 runs" in out
    assert "0 with it" in out  # no email sent twice with the claim
    assert "cold start: import" in out


@pytest.mark.timeout(200)
def test_streams_benchmark_runs() -> None:
    out = bench("streams --bulk 600 --seconds 2 --rate 10 --runs 1", timeout=150)
    assert "medians of 1 runs" in out
    assert out.count("lost 0, groups out of order 0") == 4  # each scenario, run and median
