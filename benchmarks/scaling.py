"""Shard scaling under SQS quotas: enqueue throughput for N = 1, 2, 4, 8 FIFO queues.

    python -m benchmarks.scaling --shards 1,2,4,8 --quota 10 --seconds 5 --runs 3

localsqs runs with ``--throttle QUOTA``, so every queue answers like SQS at its quota (scaled
down from 300 calls/s so that this machine, not the client, is never the limit). A pool of
N shards is driven through mailpool's own QueuePool by ``--senders`` concurrent producers,
each message its own group; what counts is messages SQS acknowledged per second. The claim:
throughput ~ N * (quota * 10 messages per batch call) until the CPU is the limit.
``--plot FILE.png`` draws throughput against N (needs matplotlib).
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from contextlib import suppress

from aws.errors import AwsError
from benchmarks.engines import engine_process
from benchmarks.processes import local_credentials
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool
from pool.provision import provision
from pool.sqs import SqsClient


async def drive(endpoint: str, shards: int, seconds: float, senders: int) -> float:
    """Acknowledged messages per second through a pool of ``shards`` queues."""
    config = PoolConfig(
        prefix=f"s{uuid.uuid4().hex[:6]}",
        shards=shards,
        endpoint_url=endpoint,
        region="us-east-1",
        send_deadline_s=30.0,
        calls_per_shard=4,
    )
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    acked = 0
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        until = time.monotonic() + seconds

        async def producer(worker: int) -> None:
            nonlocal acked
            n = 0
            while time.monotonic() < until:
                group = f"{worker}-{n}"
                n += 1
                with suppress(AwsError):
                    await pool.send(Outgoing(body="x" * 512, group=group, dedup_id=group))
                    acked += 1

        started = time.monotonic()
        await asyncio.gather(*(producer(w) for w in range(senders)))
        elapsed = time.monotonic() - started
    return acked / elapsed


def plot(path: str, shards: list[int], rates: list[float], quota: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ideal = [rates[0] * n / shards[0] for n in shards]
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(shards, rates, "o-", label="mailpool (median)")
    axes.plot(shards, ideal, "--", color="grey", label="N x one shard")
    axes.plot(
        shards,
        [n * quota * 10 for n in shards],
        ":",
        color="black",
        label=f"N x the quota's rate ({quota * 10:g}/s a shard)",
    )
    axes.set_xlabel("shards (FIFO queues)")
    axes.set_ylabel("messages acknowledged / s")
    axes.set_title(f"Shard scaling under a {quota:g} calls/s per-queue quota")
    axes.set_xticks(shards)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--shards", default="1,2,4,8")
    parser.add_argument("--quota", type=float, default=10.0, help="calls/s per queue and action")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--senders", type=int, default=400, help="concurrent producers")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--plot", help="write a PNG plot here")
    args = parser.parse_args()
    local_credentials()
    counts = [int(n) for n in args.shards.split(",")]
    results: dict[int, list[float]] = {n: [] for n in counts}
    with engine_process("localsqs", None, ["--throttle", str(args.quota)]) as (endpoint, _):
        for run in range(args.runs):
            for n in counts:
                rate = asyncio.run(drive(endpoint, n, args.seconds, args.senders))
                results[n].append(rate)
                print(f"run {run + 1} shards={n}: {rate:8.0f} msgs/s", flush=True)
    medians = [statistics.median(results[n]) for n in counts]
    print(
        f"\nmedians of {args.runs} runs, quota {args.quota:g} calls/s per queue "
        f"(ideal per shard: {args.quota * 10:g} msgs/s):"
    )
    # The quota's own ideal as well: a short run of one shard gains from the throttle's
    # initial burst, which flatters the single-shard baseline.
    print(f"{'shards':>6} {'msgs/s':>9} {'x one shard':>12} {'efficiency':>11} {'of quota':>9}")
    for n, rate in zip(counts, medians, strict=True):
        ratio = rate / medians[0]
        quota = rate / (n * args.quota * 10)
        print(f"{n:>6} {rate:9.0f} {ratio:12.2f} {ratio / (n / counts[0]):11.2f} {quota:9.2f}")
    if args.plot:
        try:
            plot(args.plot, counts, medians, args.quota)
            print(f"plot written to {args.plot}")
        except ImportError:
            print("matplotlib is not installed; no plot (pip install matplotlib)", file=sys.stderr)


if __name__ == "__main__":
    main()
