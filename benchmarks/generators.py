"""mailpool-loadtest held to a generator nobody here wrote: ``hey``, at the same fixed rate
against the same target, alternating, same run; then how many requests/s one
mailpool-loadtest process drives against a bare endpoint.

    python -m benchmarks.generators --rate 1000 --seconds 10 --runs 3 --capacity 5000
    python -m benchmarks.generators --target intake --rate 500 --seconds 10 --runs 3

The target: ``bare`` (``benchmarks.bare_http``: sub-millisecond answers, so the generators'
own client stacks show) or ``intake`` (one ``mailpool intake`` on the embedded engine).

Each run times three generators, each first in turn: hey with ``--workers`` workers (each
at rate/workers, ticking together: bursts of ``--workers``), mailpool-loadtest as it sends
by default (evenly spaced), and mailpool-loadtest ``--burst <workers>`` (hey's shape).

Targets: rates within 10 % of hey's; accept-latency percentiles, sent in the same shape,
within the spread of hey's own runs (p50/p90/p99, min..max over the runs); one process (one
core) drives >= 4,000 requests/s.
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

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
    url: str, rate: float, seconds: float, in_flight: int, burst: int = 1
) -> dict[str, float]:
    """mailpool-loadtest at ``rate`` (in bursts of ``burst``): accepted/s, percentiles, and
    its CPU in cores."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
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
            ],
            stdout=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.monotonic() - started
        assert status == 0, "mailpool-loadtest failed"
        with open(result.name) as written:
            doc = json.load(written)
    latency = doc["accept_latency_ms"]
    return {
        "rate": doc["accepted_per_s"],
        "p50": latency["p50"],
        "p90": latency["p90"],
        "p99": latency["p99"],
        "cores": (usage.ru_utime + usage.ru_stime) / wall,
        "refused": float(sum(doc["refusals"].values())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="hey's workers (-c)")
    parser.add_argument("--capacity", type=float, default=5000, help="rate of the capacity run")
    parser.add_argument("--target", choices=("bare", "intake"), default="bare")
    args = parser.parse_args()
    port, bare_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    shaped = f"mailpool-loadtest --burst {args.workers}"
    runs: dict[str, list[dict[str, float]]] = {"hey": [], "mailpool-loadtest": [], shaped: []}
    with contextlib.ExitStack() as stack:
        stack.enter_context(child("benchmarks.bare_http", "--port", str(bare_port)))
        if args.target == "intake":
            local_credentials()
            endpoint, _ = stack.enter_context(engine_process("localsqs", None))
            prefix = f"g{uuid.uuid4().hex[:6]}"
            asyncio.run(provision_pool(endpoint, prefix))
            env = mailpool_env(endpoint, prefix, 4, MAILPOOL_HTTP_PORT=str(port))
            stack.enter_context(child("mailpool", "intake", env=env))
        else:
            url = f"http://127.0.0.1:{bare_port}"
        have_hey = shutil.which("hey") is not None
        names = list(runs)
        for run in range(args.runs):
            for name in names[run % 3 :] + names[: run % 3]:  # each goes first in turn
                if name == "hey" and not have_hey:
                    continue
                if name == "hey":
                    runs[name].append(hey(url, args.rate, args.seconds, args.workers))
                else:
                    burst = args.workers if name == shaped else 1
                    runs[name].append(loadtest(url, args.rate, args.seconds, 1000, burst))
        bare = f"http://127.0.0.1:{bare_port}"
        capacity = loadtest(bare, args.capacity, min(args.seconds, 5), 256)
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
        print(
            f"  {name}: {med(r['rate'] for r in results):.0f}/s; accept latency ms "
            + ", ".join(
                f"{k} {med(r[k] for r in results):.2f} ({lo:.2f}..{hi:.2f})"
                for k, (lo, hi) in spread.items()
            )
        )
    if runs["hey"]:
        ratio = med(r["rate"] for r in runs["mailpool-loadtest"]) / med(
            r["rate"] for r in runs["hey"]
        )
        print(f"  rate mailpool-loadtest / hey: {ratio:.3f} (target within 0.90..1.10)")
        # Sent as hey sends (bursts of its workers), the percentiles must fall within the
        # spread of hey's runs, widened by the target's own run-to-run spread.
        for key in ("p50", "p90", "p99"):
            theirs = [r[key] for r in runs["hey"]]
            ours = med(r[key] for r in runs[shaped])
            low, high = min(theirs), max(theirs)
            inside = "within" if low <= ours <= high else "OUTSIDE"
            print(f"  {key}: {shaped} {ours:.2f} ms, {inside} hey's {low:.2f}..{high:.2f}")
    print(
        f"capacity: asked {args.capacity:g}/s, one mailpool-loadtest process drove "
        f"{capacity['rate']:.0f}/s at {capacity['cores']:.2f} of a core "
        f"(p99 {capacity['p99']:.1f} ms; target >= 4000/s)"
    )


if __name__ == "__main__":
    main()
