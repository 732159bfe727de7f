"""End to end: the sender's delivery rate against a bare SMTP client's, same sink, same run.

    python -m benchmarks.e2e --messages 3000 --runs 3

Ceiling: one process of bare aiosmtplib (the same MIME messages mailpool builds, over 16
persistent connections) sends to an SMTP sink process for ``--seconds``. mailpool: the queue
pool (localsqs) is filled with ``--messages`` envelopes, then one ``mailpool sender``
process (one core's worth) delivers them to the same sink. Reported: messages/s of each,
their ratio (the target is ≥ 0.70: the queueing machinery costs ≤ 30 % on top of sending),
and the sender's CPU-µs per message.
"""

import argparse
import asyncio
import statistics
import time
import uuid

import aiosmtplib

from benchmarks.engines import cpu_seconds, engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env
from intake.ids import new_id
from mailpool.envelope import Envelope, parse_email
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool, depth_total
from pool.provision import provision
from pool.sqs import SqsClient
from sender.mime import render

EMAIL = {
    "from": "Bench <bench@example.test>",
    "to": "sink@example.test",
    "subject": "benchmark",
    "text": "x" * 512,
}


def envelope() -> Envelope:
    message_id = new_id()
    return Envelope(
        id=message_id, group=message_id, accepted_at=time.time(), email=parse_email(EMAIL)
    )


async def ceiling(port: int, seconds: float, connections: int = 16) -> tuple[float, float]:
    """Messages/s of bare aiosmtplib over ``connections`` persistent connections, and the
    client's CPU-µs per message."""
    sent = 0
    cpu = time.process_time()
    until = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal sent
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while time.monotonic() < until:
            env = envelope()
            await client.sendmail("bench@example.test", ["sink@example.test"], render(env))
            sent += 1
        await client.quit()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return sent / (time.monotonic() - started), (time.process_time() - cpu) / sent * 1e6


async def fill(config: PoolConfig, count: int) -> None:
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        items = iter(range(count))

        async def loop() -> None:
            for _ in items:
                env = envelope()
                await pool.send(Outgoing(env.encode().decode(), env.group, env.id))

        await asyncio.gather(*(loop() for _ in range(64)))


async def wait_empty(config: PoolConfig) -> None:
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        while depth_total(await pool.depth()):  # noqa: ASYNC110 - the state lives in SQS
            await asyncio.sleep(0.05)


def run_once(
    args: argparse.Namespace, endpoint: str, sink_port: int
) -> tuple[float, float, float, float]:
    bare, bare_cpu_us = asyncio.run(ceiling(sink_port, args.seconds))
    config = PoolConfig(
        prefix=f"e{uuid.uuid4().hex[:6]}",
        shards=args.shards,
        endpoint_url=endpoint,
        region="us-east-1",
    )
    asyncio.run(fill(config, args.messages))
    env = mailpool_env(
        endpoint,
        config.prefix,
        args.shards,
        MAILPOOL_SMTP_PORT=str(sink_port),
        MAILPOOL_METRICS_PORT="0",
        MAILPOOL_CONCURRENCY=str(args.concurrency),
        MAILPOOL_WAIT_TIME="1",
    )
    started = time.monotonic()
    with child("mailpool", "sender", env=env) as sender:
        cpu0 = cpu_seconds(sender.pid)
        asyncio.run(wait_empty(config))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(sender.pid) - cpu0
    return bare, args.messages / elapsed, bare_cpu_us, cpu / args.messages * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0, help="ceiling measurement")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    sink_port = free_port()
    rows = []
    with (
        engine_process("localsqs", None) as (endpoint, _),
        child("benchmarks.sink", "--port", str(sink_port)),
    ):
        for run in range(args.runs):
            row = run_once(args, endpoint, sink_port)
            rows.append(row)
            print(f"run {run + 1}: " + describe(*row), flush=True)
    medians = [statistics.median(r[i] for r in rows) for i in range(4)]
    print(f"\nmedians of {args.runs} runs: " + describe(*medians))


def describe(bare: float, mailpool: float, bare_cpu_us: float, sender_cpu_us: float) -> str:
    """One result line: rates, wall-clock ratio, CPU per message, per-core ratio."""
    return (
        f"bare aiosmtplib {bare:.0f}/s ({bare_cpu_us:.0f} CPU-µs/msg), mailpool sender "
        f"{mailpool:.0f}/s ({sender_cpu_us:.0f} CPU-µs/msg); ratio {mailpool / bare:.2f} "
        f"wall-clock, {bare_cpu_us / sender_cpu_us:.2f} per core (target >= 0.70)"
    )


if __name__ == "__main__":
    main()
