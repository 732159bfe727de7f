"""Overload: offered vs accepted emails/s and answer times, from below capacity to 10x above.

    python -m benchmarks.overload --quota 2 --shards 4 --seconds 5 --runs 3 \
        --plot benchmarks/overload.png

The pool is made the bottleneck: localsqs answers like SQS at a quota of ``--quota`` calls/s
per queue and action (``--throttle``), so ``--shards`` shards take about shards x quota x 10
emails/s. First the sustainable rate is measured (a closed loop of ``--clients`` producers);
then each multiple of it (0.5x .. 10x) is offered open loop (a fixed arrival rate, every
request sent once, none retried) for ``--seconds``. Per step: the rate actually offered,
accepted (202) and refused (503) emails/s, the 503s by code (``overloaded``: refused at
once; ``unavailable``: admitted, then not stored by the deadline), goodput (accepted ÷ the
sustainable rate), and answer-time percentiles of 202s and of 503s. The targets: goodput
>= 0.8 at 10x, every answer within ``MAILPOOL_SEND_DEADLINE`` plus its margin (1 s).
"""

import argparse
import asyncio
import statistics
import time
import uuid

import aiohttp

from benchmarks.engines import engine_process, free_port
from benchmarks.load import EMAIL, run
from benchmarks.plots import lines
from benchmarks.processes import child, local_credentials, mailpool_env
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient

MULTIPLES = (0.5, 1.0, 2.0, 5.0, 10.0)


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile of ``values`` in ms (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1e3


async def offer(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Open loop at ``rate``/s; what was offered, accepted and refused, and answer times."""
    times: dict[int, list[float]] = {}
    codes: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(due: float) -> None:
            status = 0
            try:
                async with http.post(f"{url}/v1/emails", json=EMAIL) as response:
                    body = await response.json()
                    status = response.status
                    if status != 202:
                        code = body["error"]["code"]
                        codes[code] = codes.get(code, 0) + 1
            except (TimeoutError, aiohttp.ClientError):
                pass
            # From when it was due: queueing in the load generator counts too.
            times.setdefault(status, []).append(time.perf_counter() - due)

        started = time.perf_counter()
        sent = 0
        async with asyncio.TaskGroup() as tasks:
            for n in range(int(rate * seconds)):
                due = started + n / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.create_task(one(due))
                sent += 1
            offered_for = time.perf_counter() - started
    accepted, refused = times.get(202, []), times.get(503, [])
    answered = [t for values in times.values() for t in values]
    return {
        "offered/s": sent / offered_for,
        "accepted/s": len(accepted) / seconds,
        "refused/s": len(refused) / seconds,
        "overloaded": float(codes.get("overloaded", 0)),
        "unavailable": float(codes.get("unavailable", 0) + codes.get("in_doubt", 0)),
        "other": float(sum(len(v) for s, v in times.items() if s not in (202, 503))),
        "202 p50 ms": percentile(accepted, 0.5),
        "202 p99 ms": percentile(accepted, 0.99),
        "503 p50 ms": percentile(refused, 0.5),
        "503 p99 ms": percentile(refused, 0.99),
        "max ms": max(answered, default=0.0) * 1e3,
    }


async def provision_pool(endpoint: str, prefix: str, shards: int) -> None:
    config = PoolConfig(prefix=prefix, shards=shards, endpoint_url=endpoint, region="us-east-1")
    async with SqsClient.from_config(config) as client:
        await provision(client, config)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quota", type=float, default=2.0, help="calls/s per queue and action")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="per step")
    parser.add_argument("--deadline", type=float, default=2.0, help="MAILPOOL_SEND_DEADLINE")
    parser.add_argument("--clients", type=int, default=200, help="closed loop, for capacity")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plot", help="write a PNG plot of accepted vs offered rate")
    args = parser.parse_args()
    local_credentials()
    rows: dict[float, dict[str, list[float]]] = {m: {} for m in MULTIPLES}
    capacities: list[float] = []
    throttle = ["--throttle", str(args.quota)]
    for number in range(args.runs):
        prefix = f"o{uuid.uuid4().hex[:6]}"
        port = free_port()
        with engine_process("localsqs", None, throttle) as (endpoint, _):
            asyncio.run(provision_pool(endpoint, prefix, args.shards))
            env = mailpool_env(
                endpoint,
                prefix,
                args.shards,
                MAILPOOL_HTTP_PORT=str(port),
                MAILPOOL_SEND_DEADLINE=str(args.deadline),
            )
            with child("mailpool", "intake", env=env):
                url = f"http://127.0.0.1:{port}"
                capacity = asyncio.run(run(url, args.clients, args.seconds))["accepted_per_s"]
                capacities.append(capacity)
                line = [f"run {number + 1}: sustainable {capacity:.0f}/s"]
                for multiple in MULTIPLES:
                    time.sleep(args.deadline + 1)  # the last step's backlog has drained
                    step = asyncio.run(offer(url, capacity * multiple, args.seconds))
                    step["goodput"] = step["accepted/s"] / capacity
                    for key, value in step.items():
                        rows[multiple].setdefault(key, []).append(value)
                    line.append(
                        f"{multiple:g}x: offered {step['offered/s']:.0f} accepted "
                        f"{step['accepted/s']:.0f} goodput {step['goodput']:.2f} "
                        f"max {step['max ms']:.0f} ms"
                    )
                print("; ".join(line), flush=True)
    capacity = statistics.median(capacities)
    print(
        f"\nmedians of {args.runs} runs: sustainable {capacity:.0f} emails/s "
        f"({args.shards} shards at {args.quota:g} calls/s per queue and action; deadline "
        f"{args.deadline:g} s)"
    )
    keys = list(next(iter(rows.values())))
    print(
        f"(the quota's own ceiling: {args.shards} x {args.quota:g} calls/s x 10 emails = "
        f"{args.shards * args.quota * 10:.0f}/s; overloaded, unavailable: 503s of a step by code)"
    )
    print(f"{'offered':>8} " + " ".join(f"{k:>11}" for k in keys))
    medians = {m: {k: statistics.median(v) for k, v in rows[m].items()} for m in MULTIPLES}
    for multiple in MULTIPLES:
        print(f"{multiple:>7g}x " + " ".join(f"{medians[multiple][k]:>11.2f}" for k in keys))
    if args.plot:
        offered = [medians[m]["offered/s"] for m in MULTIPLES]
        lines(
            args.plot,
            f"Overload: accepted vs offered (medians of {args.runs}); sustainable {capacity:.0f}/s",
            "offered emails / s",
            "emails / s",
            offered,
            {
                "accepted (202)": [medians[m]["accepted/s"] for m in MULTIPLES],
                "refused (503)": [medians[m]["refused/s"] for m in MULTIPLES],
                "sustainable": [capacity] * len(MULTIPLES),
            },
        )


if __name__ == "__main__":
    main()
