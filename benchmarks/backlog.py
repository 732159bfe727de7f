"""The sender at depth: its per-message cost with a million emails queued, against a shallow pool.

    python -m benchmarks.backlog --backlog 1000000 --measure 20000 --runs 3

Two pools on one localsqs engine (4 shards each): a *shallow* one holding only the
``--measure`` envelopes a run delivers, and a *deep* one filled once with ``--backlog``
envelopes (by ``--fillers`` processes sending batches of 10 straight through aiobotocore).
Each run starts one ``mailpool sender`` on each pool in turn and times it until the SMTP
sink has counted ``--measure`` more deliveries; the sender's CPU comes from /proc. The
target: no slowdown of the sender's per-message cost at depth (deep / shallow ≈ 1).
"""

import argparse
import asyncio
import multiprocessing
import statistics
import time
import uuid

from aiobotocore.session import get_session

from benchmarks.e2e import envelope
from benchmarks.engines import cpu_seconds, engine_process, free_port, rss_mib
from benchmarks.intake import provision_pool
from benchmarks.processes import child, local_credentials, mailpool_env
from benchmarks.sink import delivered

SHARDS = 4


async def _fill(endpoint: str, prefix: str, count: int, concurrency: int) -> None:
    session = get_session()
    async with session.create_client("sqs", region_name="us-east-1", endpoint_url=endpoint) as sqs:
        urls = [
            (await sqs.get_queue_url(QueueName=f"{prefix}-{k}.fifo"))["QueueUrl"]
            for k in range(SHARDS)
        ]
        batches = iter(range(-(-count // 10)))

        async def loop() -> None:
            for n in batches:
                entries = []
                for i in range(10):
                    env = envelope()
                    entries.append(
                        {
                            "Id": str(i),
                            "MessageBody": env.encode().decode(),
                            "MessageGroupId": env.group,
                            "MessageDeduplicationId": env.id,
                        }
                    )
                await sqs.send_message_batch(QueueUrl=urls[n % SHARDS], Entries=entries)

        await asyncio.gather(*(loop() for _ in range(concurrency)))


def _fill_worker(job: tuple[str, str, int]) -> None:
    asyncio.run(_fill(*job, concurrency=16))


def fill(endpoint: str, prefix: str, count: int, processes: int) -> float:
    """Queue ``count`` envelopes over the pool's shards; the seconds it took."""
    started = time.monotonic()
    share = -(-count // processes)
    with multiprocessing.get_context("spawn").Pool(processes) as workers:
        workers.map(_fill_worker, [(endpoint, prefix, share)] * processes)
    return time.monotonic() - started


def measure(
    endpoint: str, prefix: str, smtp_port: int, count_port: int, count: int
) -> tuple[float, float, float]:
    """Start a sender on the pool; (msgs/s, CPU-µs/msg, RSS MiB) over ``count`` deliveries."""
    env = mailpool_env(
        endpoint,
        prefix,
        SHARDS,
        MAILPOOL_SMTP_PORT=str(smtp_port),
        MAILPOOL_METRICS_PORT="0",
        MAILPOOL_WAIT_TIME="1",
        MAILPOOL_CONCURRENCY="128",
    )
    base = delivered(count_port)
    with child("mailpool", "sender", env=env) as sender:
        cpu0, started = cpu_seconds(sender.pid), time.monotonic()
        while delivered(count_port) < base + count:
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(sender.pid) - cpu0
        rss = rss_mib(sender.pid)
    return count / elapsed, cpu / count * 1e6, rss


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--measure", type=int, default=20_000, help="deliveries timed a run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fillers", type=int, default=2, help="processes filling the backlog")
    args = parser.parse_args()
    local_credentials()
    smtp_port, count_port = free_port(), free_port()
    rows: dict[str, list[tuple[float, float, float]]] = {"shallow": [], "deep": []}
    with (
        engine_process("localsqs", None) as (endpoint, _),
        child("benchmarks.sink", "--port", str(smtp_port), "--count-port", str(count_port)),
    ):
        deep = f"d{uuid.uuid4().hex[:6]}"
        asyncio.run(provision_pool(endpoint, deep))
        took = fill(endpoint, deep, args.backlog, args.fillers)
        print(f"backlog: {args.backlog} envelopes queued in {took:.0f} s", flush=True)
        for run in range(args.runs):
            shallow = f"s{uuid.uuid4().hex[:6]}"
            asyncio.run(provision_pool(endpoint, shallow))
            fill(endpoint, shallow, args.measure, args.fillers)
            rows["shallow"].append(measure(endpoint, shallow, smtp_port, count_port, args.measure))
            rows["deep"].append(measure(endpoint, deep, smtp_port, count_port, args.measure))
            print(
                f"run {run + 1}: "
                + "; ".join(f"{name} {describe(*results[-1])}" for name, results in rows.items()),
                flush=True,
            )
    medians = {
        name: [statistics.median(r[i] for r in results) for i in range(3)]
        for name, results in rows.items()
    }
    print(
        f"\nmedians of {args.runs} runs: "
        + "; ".join(f"{name} {describe(*values)}" for name, values in medians.items())
    )
    print(
        f"deep / shallow: rate {medians['deep'][0] / medians['shallow'][0]:.2f}, CPU per "
        f"message {medians['deep'][1] / medians['shallow'][1]:.2f} (target: about 1)"
    )


def describe(rate: float, cpu_us: float, rss: float) -> str:
    """One pool's result: delivered/s, sender CPU-µs per message, sender RSS."""
    return f"{rate:.0f} msgs/s, {cpu_us:.0f} CPU-µs/msg, RSS {rss:.0f} MiB"


if __name__ == "__main__":
    main()
