"""Intake against its ceiling: accepted/s and accept latency, same run, same load generator.

    python -m benchmarks.intake --seconds 5 --concurrency 64 --runs 3

Closed loop (``--concurrency`` clients, each sending its next email on its last answer)
against a bare aiohttp handler that only parses the JSON and answers 202, then against
``mailpool intake`` on localsqs (4 shards); open loop (a fixed arrival rate) at 25 %, 50 %
and 75 % of intake's closed-loop rate for latency percentiles; and the batch endpoint
(50 emails a request). The target: intake >= 0.5 x the bare handler while the queue engine is
not the limit; p99 accept latency <= 3 x (batch linger + one SQS call). On a machine whose
cores the load generator and the engine share with the server, "ratio per core" compares
the two servers' own CPU-µs per request (from /proc), which the sharing does not distort.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import aiohttp

from benchmarks.engines import cpu_seconds, engine_process, free_port
from benchmarks.load import EMAIL, open_loop, run
from benchmarks.plots import lines
from benchmarks.processes import child, local_credentials, mailpool_env
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient


async def batch_rate(url: str, concurrency: int, seconds: float, size: int = 50) -> float:
    """Emails/s accepted through POST /v1/emails/batch."""
    accepted = 0
    until = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            nonlocal accepted
            while time.monotonic() < until:
                async with http.post(f"{url}/v1/emails/batch", json=[EMAIL] * size) as response:
                    body = await response.json()
                    accepted += sum(1 for r in body.get("results", []) if "id" in r)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return accepted / (time.monotonic() - started)


async def provision_pool(endpoint: str, prefix: str) -> None:
    config = PoolConfig(prefix=prefix, shards=4, endpoint_url=endpoint, region="us-east-1")
    async with SqsClient.from_config(config) as client:
        await provision(client, config)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plot", help="write a PNG plot of latency against offered rate")
    args = parser.parse_args()
    local_credentials()
    prefix = f"i{uuid.uuid4().hex[:6]}"
    intake_port, bare_port = free_port(), free_port()
    rows: dict[str, list[float]] = {}
    with engine_process("localsqs", None) as (endpoint, _):
        asyncio.run(provision_pool(endpoint, prefix))
        env = mailpool_env(endpoint, prefix, 4, MAILPOOL_HTTP_PORT=str(intake_port))
        with (
            child("mailpool", "intake", env=env) as intake_process,
            child("benchmarks.bare_http", "--port", str(bare_port)) as bare_process,
        ):
            intake, bare = f"http://127.0.0.1:{intake_port}", f"http://127.0.0.1:{bare_port}"
            for number in range(args.runs):
                bare_cpu = cpu_seconds(bare_process.pid)
                ceiling = asyncio.run(run(bare, args.concurrency, args.seconds))
                bare_cpu = cpu_seconds(bare_process.pid) - bare_cpu
                intake_cpu = cpu_seconds(intake_process.pid)
                closed = asyncio.run(run(intake, args.concurrency, args.seconds))
                intake_cpu = cpu_seconds(intake_process.pid) - intake_cpu
                bare_us = bare_cpu / (ceiling["accepted_per_s"] * args.seconds) * 1e6
                intake_us = intake_cpu / (closed["accepted_per_s"] * args.seconds) * 1e6
                batched = asyncio.run(
                    batch_rate(intake, max(1, args.concurrency // 8), args.seconds)
                )
                result = {
                    "bare/s": ceiling["accepted_per_s"],
                    "intake/s": closed["accepted_per_s"],
                    "ratio": closed["accepted_per_s"] / ceiling["accepted_per_s"],
                    "bare CPU-us/req": bare_us,
                    "intake CPU-us/email": intake_us,
                    "ratio per core": bare_us / intake_us,
                    "closed p99 ms": closed["p99_ms"],
                    "batch emails/s": batched,
                }
                for share in (0.25, 0.5, 0.75):
                    offered = closed["accepted_per_s"] * share
                    opened = asyncio.run(open_loop(intake, offered, args.seconds))
                    result[f"{share:.0%} p50 ms"] = opened["p50_ms"]
                    result[f"{share:.0%} p99 ms"] = opened["p99_ms"]
                    result[f"{share:.0%} p99.9 ms"] = opened["p999_ms"]
                for key, value in result.items():
                    rows.setdefault(key, []).append(value)
                print(
                    f"run {number + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in result.items()),
                    flush=True,
                )
    print(
        f"\nmedians of {args.runs} runs ({args.concurrency} clients, closed loop; open loop at "
        "25/50/75 % of intake's closed-loop rate):"
    )
    medians = {key: statistics.median(values) for key, values in rows.items()}
    for key, value in medians.items():
        print(f"  {key:>16}: {value:9.1f}")
    if args.plot:
        shares = ("25%", "50%", "75%")
        lines(
            args.plot,
            f"Intake accept latency, open loop (medians of {args.runs}); closed loop "
            f"{medians['intake/s']:.0f}/s",
            "offered emails / s (share of the closed-loop rate)",
            "accept latency, ms",
            [medians["intake/s"] * int(share[:-1]) / 100 for share in shares],
            {
                name: [medians[f"{share} {name} ms"] for share in shares]
                for name in ("p50", "p99", "p99.9")
            },
        )


if __name__ == "__main__":
    main()
