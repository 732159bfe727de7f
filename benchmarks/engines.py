"""Queue engines side by side: FIFO send and receive+delete rates, server CPU and memory.

    python -m benchmarks.engines --engines localsqs,moto --clients 2 --seconds 10 --runs 3

Each engine runs as its own process on 127.0.0.1; ``--clients`` client processes (each
an aiobotocore client with ``--concurrency`` calls in flight) send batches of 10 to one
FIFO queue, each message its own group, for ``--seconds``; then they receive (10 at a time)
and delete (batches of 10) until the queue is empty. The server's CPU time comes from
/proc, so CPU-µs per message is the engine's own cost, not the clients'. ``--prefill``
puts that many messages in the measured queue first (the drain then takes as many as were
sent, oldest first), to show whether depth slows the engine.
LocalStack is compared when ``--localstack-python`` names a Python that has it installed.
"""

import argparse
import asyncio
import multiprocessing
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from benchmarks.processes import stop

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that were waited for."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def rss_mib(pid: int) -> float:
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


@contextmanager
def engine_process(
    name: str, localstack_python: str | None, extra: list[str] | None = None
) -> Iterator[tuple[str, int]]:
    """Start an engine (``extra``: more localsqs flags); yields (endpoint, pid)."""
    port = free_port()
    data = tempfile.mkdtemp(prefix=f"bench-{name}-")
    env = {**os.environ, "MAILPOOL_LOG_LEVEL": "WARNING"}
    if name == "localsqs":
        cmd = [
            sys.executable,
            "-m",
            "mailpool",
            "localsqs",
            "--port",
            str(port),
            "--data-dir",
            data,
            *(extra or []),
        ]
    elif name == "moto":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    elif name == "localstack":
        assert localstack_python
        env.update(
            {
                "GATEWAY_LISTEN": f"127.0.0.1:{port}",
                "SERVICES": "sqs",
                "SQS_ENDPOINT_STRATEGY": "path",
            }
        )
        cmd = [localstack_python, "-m", "localstack.cli.main", "start", "--host"]
    else:
        raise ValueError(name)
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{name} did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process, timeout_s=20)
        shutil.rmtree(data, ignore_errors=True)


def client(endpoint: str) -> Any:
    return get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=AioConfig(retries={"total_max_attempts": 3}, max_pool_connections=64),
    )


async def _send_for(endpoint: str, url: str, seconds: float, concurrency: int, tag: str) -> int:
    sent = 0
    async with client(endpoint) as sqs:
        until = time.monotonic() + seconds

        async def loop(worker: int) -> None:
            nonlocal sent
            n = 0
            while time.monotonic() < until:
                entries = [
                    {
                        "Id": str(i),
                        "MessageBody": "x" * 512,
                        "MessageGroupId": f"{tag}-{worker}-{n}-{i}",
                        "MessageDeduplicationId": f"{tag}-{worker}-{n}-{i}",
                    }
                    for i in range(10)
                ]
                answer = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
                sent += len(answer.get("Successful", []))
                n += 1

        await asyncio.gather(*(loop(w) for w in range(concurrency)))
    return sent


async def _drain(endpoint: str, url: str, concurrency: int, deadline_s: float, target: int) -> int:
    drained = 0
    async with client(endpoint) as sqs:
        until = time.monotonic() + deadline_s

        async def loop() -> None:
            nonlocal drained
            empty = 0
            while time.monotonic() < until and empty < 2 and drained < target:
                answer = await sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                )
                messages = answer.get("Messages", [])
                if not messages:
                    empty += 1
                    continue
                empty = 0
                await sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                drained += len(messages)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return drained


def _send_worker(args: tuple[str, str, float, int, str]) -> int:
    return asyncio.run(_send_for(*args))


def _drain_worker(args: tuple[str, str, int, float, int]) -> int:
    return asyncio.run(_drain(*args))


async def _queue(endpoint: str, name: str) -> str:
    async with client(endpoint) as sqs:
        answer = await sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})
        return str(answer["QueueUrl"])


@dataclass
class Result:
    engine: str
    send_per_s: float
    drain_per_s: float
    send_cpu_us: float
    drain_cpu_us: float
    rss_mib: float


def measure(engine: str, args: argparse.Namespace, run: int) -> Result:
    with engine_process(engine, args.localstack_python) as (endpoint, pid):
        pool = multiprocessing.get_context("spawn").Pool(args.clients)
        try:
            url = asyncio.run(_queue(endpoint, f"bench-{run}.fifo"))
            if args.prefill:  # the measured queue itself is this deep
                asyncio.run(_prefill(endpoint, url, args.prefill, args.concurrency))
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            sent = sum(
                pool.map(
                    _send_worker,
                    [
                        (endpoint, url, args.seconds, args.concurrency, f"c{c}")
                        for c in range(args.clients)
                    ],
                )
            )
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            # Drain as many as were sent (from the head: at depth, the oldest go first).
            share = -(-sent // args.clients)
            drained = sum(
                pool.map(
                    _drain_worker,
                    [
                        (endpoint, url, args.concurrency, args.seconds * 20, share)
                        for _ in range(args.clients)
                    ],
                )
            )
            cpu2, t2 = cpu_seconds(pid), time.monotonic()
            rss = rss_mib(pid)
        finally:
            pool.close()
            pool.join()
    return Result(
        engine,
        sent / (t1 - t0),
        drained / (t2 - t1),
        (cpu1 - cpu0) / max(sent, 1) * 1e6,
        (cpu2 - cpu1) / max(drained, 1) * 1e6,
        rss,
    )


async def _prefill(endpoint: str, url: str, count: int, concurrency: int) -> None:
    async with client(endpoint) as sqs:
        batches = iter(range(count // 10))

        async def loop() -> None:
            for n in batches:
                await sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {
                            "Id": str(i),
                            "MessageBody": "x" * 512,
                            "MessageGroupId": f"pre-{n}-{i}",
                            "MessageDeduplicationId": f"pre-{n}-{i}",
                        }
                        for i in range(10)
                    ],
                )

        await asyncio.gather(*(loop() for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--engines", default="localsqs,moto")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight per client")
    parser.add_argument("--seconds", type=float, default=10.0, help="send phase length")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefill", type=int, default=0, help="messages queued beforehand")
    parser.add_argument("--localstack-python", help="a Python with LocalStack installed")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if "localstack" in engines and not args.localstack_python:
        print("localstack: skipped (needs --localstack-python, a Python >= 3.12 with it)")
        engines.remove("localstack")
    rows: dict[str, list[Result]] = {}
    for run in range(args.runs):
        for engine in engines:
            result = measure(engine, args, run)
            rows.setdefault(engine, []).append(result)
            print(
                f"run {run + 1} {engine:>10}: send {result.send_per_s:8.0f}/s "
                f"({result.send_cpu_us:6.0f} CPU-µs/msg)  receive+delete "
                f"{result.drain_per_s:8.0f}/s ({result.drain_cpu_us:6.0f} CPU-µs/msg)  "
                f"RSS {result.rss_mib:5.0f} MiB",
                flush=True,
            )
    print(
        f"\nmedians of {args.runs} runs, {args.clients} client processes x "
        f"{args.concurrency} calls in flight, prefill {args.prefill}:"
    )
    header = ("engine", "send/s", "CPU-µs", "recv+del/s", "CPU-µs", "RSS MiB")
    print("{:>10} {:>9} {:>7} {:>11} {:>7} {:>8}".format(*header))
    medians = {}
    for engine, results in rows.items():
        fields = ("send_per_s", "send_cpu_us", "drain_per_s", "drain_cpu_us", "rss_mib")
        m = {f: statistics.median(getattr(r, f) for r in results) for f in fields}
        medians[engine] = m
        print(
            f"{engine:>10} {m['send_per_s']:9.0f} {m['send_cpu_us']:7.0f} "
            f"{m['drain_per_s']:11.0f} {m['drain_cpu_us']:7.0f} {m['rss_mib']:8.0f}"
        )
    if "localsqs" in medians:
        for other in (e for e in medians if e != "localsqs"):
            a, b = medians["localsqs"], medians[other]
            print(
                f"localsqs / {other}: send x{a['send_per_s'] / b['send_per_s']:.1f}, "
                f"receive+delete x{a['drain_per_s'] / b['drain_per_s']:.1f}; server CPU per "
                f"message {a['send_cpu_us'] / b['send_cpu_us']:.4f} (send), "
                f"{a['drain_cpu_us'] / b['drain_cpu_us']:.4f} (receive+delete)"
            )


if __name__ == "__main__":
    main()
