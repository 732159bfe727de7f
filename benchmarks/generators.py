"""mailpool-loadtest held to a generator nobody here wrote: ``hey``, at the same fixed rate
against the same target, alternating, same run; then how many requests/s one
mailpool-loadtest process drives against a bare endpoint.

    python -m benchmarks.generators --rate 1000 --seconds 10 --runs 3 --capacity 5000
    python -m benchmarks.generators --target intake --rate 500 --seconds 10 --runs 3
    python -m benchmarks.generators --target stack --rate 200 --seconds 15 --runs 3 --workers 40

The target: ``bare`` (``benchmarks.bare_http``: sub-millisecond answers, so the generators'
own client stacks show), ``intake`` (one ``mailpool intake`` on the embedded engine), or
``stack`` (the whole ``mailpool dev`` stack — intake, engine, sender, webhooks — with
mailpool-loadtest timing delivery through its webhook endpoint, and a stand-in answering the
webhooks while hey runs: the load a user puts on it).

Each run times four generators, each first in turn: hey with ``--workers`` workers (each at
rate/workers, ticking together: bursts of ``--workers``), hey with one worker (evenly
spaced, where one worker keeps up), mailpool-loadtest as it sends by default (evenly
spaced), and mailpool-loadtest ``--burst <workers>`` (hey's shape).

Targets: rates within 10 % of hey's; accept-latency p50 and p99, sent in the same shape,
within the spread of hey's own runs (min..max over the runs), or within 25 % and 5 ms of
hey's median; one process (one core) drives >= 4,000 requests/s.
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

import boto3

from benchmarks.engines import engine_process, free_port
from benchmarks.intake import provision_pool
from benchmarks.processes import child, local_credentials, mailpool_env

BODY = json.dumps({"from": "a@example.test", "to": "b@example.test", "subject": "s", "text": "x"})


def hey(url: str, rate: float, seconds: float, workers: int) -> dict[str, float]:
    """hey at ``rate`` requests/s (``workers`` each at rate/workers): rate and percentiles."""
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-q",
            f"{rate / workers:g}",
            "-c",
            str(workers),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-d",
            BODY,
            f"{url}/v1/emails",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for name in ("50", "90", "99"):
        found = re.search(rf"{name}%+ in ([\d.]+) secs", out)
        figures[f"p{name}"] = float(found.group(1)) * 1000 if found else float("nan")
    return figures


def loadtest(
    url: str,
    rate: float,
    seconds: float,
    in_flight: int,
    burst: int = 1,
    webhook: tuple[int, str] | None = None,
) -> dict[str, float]:
    """mailpool-loadtest at ``rate`` (in bursts of ``burst``; timing delivery at the webhook
    port and secret ``webhook``): accepted/s, percentiles, its send lag, and its CPU in
    cores."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        hook = (
            []
            if webhook is None
            else [
                "--webhook-port",
                str(webhook[0]),
                "--webhook-secret",
                webhook[1],
                "--settle",
                "30",
            ]
        )
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailpool_client.loadtest",
                url,
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
                "--max-in-flight",
                str(in_flight),
                "--quiet",
                "--burst",
                str(burst),
                "--json",
                result.name,
                *hook,
            ],
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        assert status == 0, "mailpool-loadtest failed"
        with open(result.name) as written:
            doc = json.load(written)
    latency, lag = doc["accept_latency_ms"], doc["send_lag_ms"]
    return {
        "rate": doc["accepted_per_s"],
        "p50": latency["p50"],
        "p90": latency["p90"],
        "p99": latency["p99"],
        "lag_p99": lag["p99"],
        "cores": (usage.ru_utime + usage.ru_stime) / wall,
        "refused": float(sum(doc["refusals"].values())),
        "undelivered": float(doc["undelivered"]),
    }


@contextlib.contextmanager
def stack_target(hook: int, secret: str) -> Iterator[tuple[str, Callable[[], None]]]:
    """``mailpool dev`` on free ports in a directory of its own, its webhooks going to
    ``hook``; yields the intake's URL and a function that waits until the stack is idle
    (every queue empty: what one run accepted is delivered and its events sent before the
    next run starts, whichever generator sent it)."""
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "MAILPOOL_LOG_LEVEL": "WARNING",
            "MAILPOOL_WEBHOOK_URL": f"http://127.0.0.1:{hook}/",
            "MAILPOOL_WEBHOOK_SECRET": secret,
        }
        port, sqs = free_port(), free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mailpool",
                "dev",
                "--port",
                str(port),
                "--metrics-port",
                "0",
                "--sqs-port",
                str(sqs),
                "--smtp-port",
                "0",
                "--webhooks-metrics-port",
                "0",
            ],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdout is not None
        process.stdout.readline()  # "mailpool local stack is up"
        try:
            yield f"http://127.0.0.1:{port}", lambda: idle(f"http://127.0.0.1:{sqs}")
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def idle(endpoint: str, timeout_s: float = 180.0) -> None:
    """Wait until every queue on ``endpoint`` is empty (nothing visible or in flight)."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 2:
        urls = [u for u in sqs.list_queues().get("QueueUrls", []) if "dlq" not in u]
        waiting = sum(
            int(value)
            for url in urls
            for value in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)[
                "Attributes"
            ].values()
        )
        quiet = quiet + 1 if waiting == 0 else 0
        assert time.monotonic() < deadline, f"the stack did not drain ({waiting} waiting)"
        time.sleep(0.5)


def within(ours: float, theirs: list[float]) -> str:
    """Whether ``ours`` is within hey's spread, or within 25 % and 5 ms of its median."""
    low, high, mid = min(theirs), max(theirs), statistics.median(theirs)
    if low <= ours <= high:
        return f"within hey's {low:.2f}..{high:.2f}"
    if abs(ours - mid) <= 0.25 * mid and abs(ours - mid) <= 5.0:
        return f"within 25 % and 5 ms of hey's {mid:.2f} (spread {low:.2f}..{high:.2f})"
    return f"OUTSIDE hey's {low:.2f}..{high:.2f} (median {mid:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="hey's workers (-c)")
    parser.add_argument("--capacity", type=float, default=5000, help="rate of the capacity run")
    parser.add_argument("--target", choices=("bare", "intake", "stack"), default="bare")
    args = parser.parse_args()
    port, bare_port, hook = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    shaped = f"mailpool-loadtest --burst {args.workers}"
    bursty = f"hey -c {args.workers}"
    runs: dict[str, list[dict[str, float]]] = {
        bursty: [],
        "hey -c 1": [],
        "mailpool-loadtest": [],
        shaped: [],
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(child("benchmarks.bare_http", "--port", str(bare_port)))
        webhook = None
        settle: Callable[[], None] = lambda: None  # noqa: E731 - nothing to wait for
        if args.target == "intake":
            local_credentials()
            endpoint, _ = stack.enter_context(engine_process("localsqs", None))
            prefix = f"g{uuid.uuid4().hex[:6]}"
            asyncio.run(provision_pool(endpoint, prefix))
            env = mailpool_env(endpoint, prefix, 4, MAILPOOL_HTTP_PORT=str(port))
            stack.enter_context(child("mailpool", "intake", env=env))
        elif args.target == "stack":
            url, settle = stack.enter_context(stack_target(hook, secret))
            webhook = (hook, secret)
        else:
            url = f"http://127.0.0.1:{bare_port}"
        have_hey = shutil.which("hey") is not None
        names = list(runs)
        for run in range(args.runs):
            for name in names[run % 4 :] + names[: run % 4]:  # each goes first in turn
                if name.startswith("hey") and not have_hey:
                    continue
                settle()
                if name.startswith("hey"):
                    workers = args.workers if name == bursty else 1
                    with contextlib.ExitStack() as standin:
                        if webhook is not None:  # someone must answer the stack's webhooks
                            standin.enter_context(
                                child("benchmarks.bare_http", "--port", str(hook))
                            )
                        runs[name].append(hey(url, args.rate, args.seconds, workers))
                        settle()  # the stand-in answers the run's last webhooks
                else:
                    burst = args.workers if name == shaped else 1
                    runs[name].append(loadtest(url, args.rate, args.seconds, 1000, burst, webhook))
        bare = f"http://127.0.0.1:{bare_port}"
        capacity = loadtest(bare, args.capacity, min(args.seconds, 5), 256)
    report(args, runs, capacity)


def report(
    args: argparse.Namespace, runs: dict[str, list[dict[str, float]]], capacity: dict[str, float]
) -> None:
    """Each generator's medians and spreads, then the comparisons the targets name."""
    med = statistics.median
    print(
        f"{args.target}: at {args.rate:g} requests/s for {args.seconds:g} s, "
        f"medians of {args.runs} runs"
    )
    for name, results in runs.items():
        if not results:
            print(f"  {name}: not installed (apt-get install hey); skipped")
            continue
        spread = {
            k: (min(r[k] for r in results), max(r[k] for r in results))
            for k in ("p50", "p90", "p99")
        }
        lag = (
            f"; send lag p99 {med(r['lag_p99'] for r in results):.2f} ms"
            if "lag_p99" in results[0]
            else ""
        )
        print(
            f"  {name}: {med(r['rate'] for r in results):.0f}/s; accept latency ms "
            + ", ".join(
                f"{k} {med(r[k] for r in results):.2f} ({lo:.2f}..{hi:.2f})"
                for k, (lo, hi) in spread.items()
            )
            + lag
        )
    bursty = f"hey -c {args.workers}"
    shaped = f"mailpool-loadtest --burst {args.workers}"
    for ours, theirs in ((shaped, bursty), ("mailpool-loadtest", "hey -c 1")):
        if not runs[theirs]:
            continue
        ratio = med(r["rate"] for r in runs[ours]) / med(r["rate"] for r in runs[theirs])
        print(f"  {ours} against {theirs}: rate {ratio:.3f} (target within 0.90..1.10)")
        for key in ("p50", "p99"):
            mine = med(r[key] for r in runs[ours])
            print(f"    {key}: {mine:.2f} ms, {within(mine, [r[key] for r in runs[theirs]])}")
    print(
        f"capacity: asked {args.capacity:g}/s, one mailpool-loadtest process drove "
        f"{capacity['rate']:.0f}/s at {capacity['cores']:.2f} of a core "
        f"(p99 {capacity['p99']:.1f} ms; target >= 4000/s)"
    )


if __name__ == "__main__":
    main()
