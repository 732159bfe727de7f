"""End to end: the sender's delivery rate against a bare SMTP client's, same sink, same run.

    python -m benchmarks.e2e --messages 3000 --runs 3

Two ceilings, each one process of bare aiosmtplib over 16 persistent connections sending to
an SMTP sink process for ``--seconds``:
- *stdlib*: the client as a user writes it, rendering each message with the stdlib's
  ``EmailMessage`` and sending it with ``send_message`` (the issue's "bare SMTP client");
- *same bytes*: rendering with mailpool's own renderer and sending bytes with ``sendmail``,
  exactly what the sender does minus the queue (the strict ceiling).
mailpool: the queue pool (localsqs) is filled with ``--messages`` envelopes, then
``--senders`` ``mailpool sender`` processes (default one: one core's worth) deliver them to
the same sink; their CPU is summed. Reported:
messages/s and CPU-µs per message of each, and the sender's per-core ratio to each ceiling
(the target is >= 0.70: the queueing machinery costs <= 30 % on top of sending).
"""

import argparse
import asyncio
import statistics
import time
import uuid
from contextlib import ExitStack
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from benchmarks.engines import cpu_seconds, engine_process, free_port
from benchmarks.plots import bars
from benchmarks.processes import child, local_credentials, mailpool_env, ratio
from core.envelope import Envelope
from intake.ids import new_id
from intake.validation import parse_email
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


async def ceiling(
    port: int, seconds: float, stdlib: bool, connections: int = 16
) -> tuple[float, float]:
    """Messages/s of bare aiosmtplib over ``connections`` persistent connections, and the
    client's CPU-µs per message; ``stdlib``: rendered by the stdlib, else by mailpool."""
    sent = 0
    cpu = time.process_time()
    until = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal sent
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while time.monotonic() < until:
            env = envelope()
            if stdlib:
                await client.send_message(to_email_message(env))
            else:
                await client.sendmail("bench@example.test", ["sink@example.test"], render(env))
            sent += 1
        await client.quit()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return sent / (time.monotonic() - started), (time.process_time() - cpu) / sent * 1e6


def to_email_message(env: Envelope) -> EmailMessage:
    """The message as a user of the stdlib writes it: same headers, same body."""
    message = EmailMessage()
    message["From"] = EMAIL["from"]
    message["To"] = EMAIL["to"]
    message["Subject"] = EMAIL["subject"]
    message["Date"] = formatdate(env.accepted_at)
    message["Message-ID"] = f"<{env.id}@example.test>"
    message.set_content(EMAIL["text"])
    return message


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


def drain_rate(
    endpoint: str,
    sink_port: int,
    messages: int,
    *,
    command: str = "sender",
    events: bool = False,
    **settings: str,
) -> tuple[float, float]:
    """Messages/s and CPU-µs per message of one ``mailpool <command>`` process (concurrency
    128) emptying a pool of 4 shards filled with ``messages`` into the sink at
    ``sink_port``; ``settings`` are further MAILPOOL_* variables."""
    config = PoolConfig(
        prefix=f"v{uuid.uuid4().hex[:6]}",
        shards=4,
        endpoint_url=endpoint,
        region="us-east-1",
        events=events,
    )
    asyncio.run(fill(config, messages))
    env = mailpool_env(
        endpoint,
        config.prefix,
        4,
        MAILPOOL_SMTP_PORT=str(sink_port),
        MAILPOOL_METRICS_PORT="0",
        MAILPOOL_CONCURRENCY="128",
        MAILPOOL_WAIT_TIME="1",
        MAILPOOL_EVENTS="on" if events else "off",
        **settings,
    )
    started = time.monotonic()
    with child("mailpool", command, env=env) as process:
        cpu0 = cpu_seconds(process.pid)
        asyncio.run(wait_empty(config))
        cpu = cpu_seconds(process.pid) - cpu0
        return messages / (time.monotonic() - started), cpu / messages * 1e6


def run_once(args: argparse.Namespace, endpoint: str, sink_port: int) -> list[float]:
    stdlib, stdlib_cpu_us = asyncio.run(ceiling(sink_port, args.seconds, stdlib=True))
    bare, bare_cpu_us = asyncio.run(ceiling(sink_port, args.seconds, stdlib=False))
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
    with ExitStack() as stack:
        pids = [
            stack.enter_context(child("mailpool", "sender", env=env)).pid
            for _ in range(args.senders)
        ]
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        asyncio.run(wait_empty(config))
        elapsed = time.monotonic() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
    return [
        stdlib,
        stdlib_cpu_us,
        bare,
        bare_cpu_us,
        args.messages / elapsed,
        cpu / args.messages * 1e6,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0, help="ceiling measurement")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--senders", type=int, default=1, help="sender processes")
    parser.add_argument("--plot", help="write a PNG bar chart here")
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
    medians = [statistics.median(r[i] for r in rows) for i in range(6)]
    print(f"\nmedians of {args.runs} runs: " + describe(*medians))
    if args.plot:
        stdlib, stdlib_us, bare, bare_us, sender, sender_us = medians
        bars(
            args.plot,
            f"One process sending to one SMTP sink (medians of {args.runs})",
            "messages / s",
            {
                "mailpool sender\n(queue to SMTP)": sender,
                "bare aiosmtplib\n(stdlib rendering)": stdlib,
                "bare aiosmtplib\n(same bytes)": bare,
            },
            [
                f"{rate:.0f}/s, {us:.0f} CPU-µs/msg"
                for rate, us in ((sender, sender_us), (stdlib, stdlib_us), (bare, bare_us))
            ],
        )


def describe(
    stdlib: float, stdlib_us: float, bare: float, bare_us: float, sender: float, sender_us: float
) -> str:
    """One result line: each rate with its CPU per message, the per-core ratios."""
    return (
        f"bare aiosmtplib, stdlib rendering {stdlib:.0f}/s ({stdlib_us:.0f} CPU-µs/msg); "
        f"bare aiosmtplib, same bytes {bare:.0f}/s ({bare_us:.0f} CPU-µs/msg); "
        f"mailpool sender {sender:.0f}/s ({sender_us:.0f} CPU-µs/msg); per core: "
        f"{ratio(stdlib_us, sender_us)} of the stdlib client, {ratio(bare_us, sender_us)} of the "
        "same-bytes client (target >= 0.70)"
    )


if __name__ == "__main__":
    main()
