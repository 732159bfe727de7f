"""mailpool against its peer, Celery on SQS, end to end on the same queue engine and sink.

    python -m benchmarks.peer --emails 3000 --runs 3

Both systems take ``--emails`` emails through their own front door and deliver them to one
SMTP sink (``benchmarks.sink``), on one localsqs engine; the figure is emails delivered per
second from the first enqueue to the sink's last acceptance, so each system's producer,
queueing and sending all count.

- mailpool: ``--clients`` concurrent HTTP clients POST /v1/emails to ``--intakes`` intake
  processes (4 shards); ``--senders`` sender processes deliver.
- Celery: a producer process (``--celery-producers`` threads calling ``apply_async``, each
  email its own FIFO group, as mailpool's) and one ``celery worker`` (``--celery-pool``,
  ``--celery-concurrency``, ``--celery-prefetch``) on kombu's SQS transport (JSON protocol,
  pycurl); the task renders the same MIME message and sends it with smtplib over a
  persistent connection per thread. ``--celery-acks late`` deletes from SQS only after
  sending, like mailpool; ``early`` deletes on receipt (faster, loses work on a crash).

Each system goes first in turn; the multiple is quoted as the median of each run's own
ratio (the ratio of the median rates is printed beside it). Also reported: each side's
CPU-µs per email, summed over its processes (and their children). The process counts
are parameters, so the same command shows multi-process scaling on a machine with more
cores.
"""

import argparse
import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import aiohttp

from benchmarks.engines import engine_process, free_port
from benchmarks.intake import provision_pool
from benchmarks.load import EMAIL
from benchmarks.plots import bars
from benchmarks.processes import (
    child,
    local_credentials,
    mailpool_env,
    stop,
    tree_cpu_seconds,
)
from benchmarks.sink import delivered
from pool.config import PoolConfig
from pool.sqs import SqsClient


async def post_all(urls: list[str], count: int, clients: int) -> None:
    """POST ``count`` emails from ``clients`` closed-loop clients spread over ``urls``;
    a refused email (503 under overload) is posted again."""
    todo = iter(range(count))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client(url: str) -> None:
            for _ in todo:
                while True:
                    async with http.post(f"{url}/v1/emails", json=EMAIL) as response:
                        await response.read()
                        if response.status == 202:
                            break

        await asyncio.gather(*(client(urls[n % len(urls)]) for n in range(clients)))


def wait_delivered(count_port: int, target: int, timeout_s: float) -> float:
    """Wait until the sink has ``target`` messages; the time.time() it saw them."""
    deadline = time.monotonic() + timeout_s
    while delivered(count_port) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sink got {delivered(count_port)} of {target}")
        time.sleep(0.02)
    return time.time()


@dataclass(frozen=True)
class Shared:
    """What both systems use: the queue engine and the sink."""

    endpoint: str
    smtp_port: int
    count_port: int
    pids: dict[str, int]


@dataclass(frozen=True)
class Result:
    """One system's run: delivered/s, its own CPU-µs per email, cores used per process."""

    rate: float
    cpu_us: float
    cores: dict[str, float]


class Busy:
    """CPU used per process over a stretch of wall-clock time, in cores."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._wall = time.monotonic()
        self._cpu = {name: self._of(pid) for name, pid in pids.items()}

    @staticmethod
    def _of(pid: int) -> float:
        # This process's children are the other processes measured: count its own CPU only.
        return tree_cpu_seconds(pid, children=pid != os.getpid())

    def cores(self, **known_cpu: float) -> dict[str, float]:
        """Cores each process used since the start; ``known_cpu``: CPU-s of exited ones."""
        wall = time.monotonic() - self._wall
        cpu = {name: self._of(pid) for name, pid in self._pids.items()}
        used = {name: (cpu[name] - self._cpu[name]) / wall for name in self._pids}
        return used | {name: seconds / wall for name, seconds in known_cpu.items()}


def run_mailpool(args: argparse.Namespace, shared: Shared) -> Result:
    """mailpool's run; its CPU is that of its intake and sender processes."""
    prefix = f"m{uuid.uuid4().hex[:6]}"
    asyncio.run(provision_pool(shared.endpoint, prefix))
    base = delivered(shared.count_port)
    with ExitStack() as stack:
        pids: dict[str, int] = {}
        urls = []
        for n in range(args.intakes):
            port = free_port()
            env = mailpool_env(shared.endpoint, prefix, 4, MAILPOOL_HTTP_PORT=str(port))
            pids[f"intake {n + 1}"] = stack.enter_context(child("mailpool", "intake", env=env)).pid
            urls.append(f"http://127.0.0.1:{port}")
        for n in range(args.senders):
            env = mailpool_env(
                shared.endpoint,
                prefix,
                4,
                MAILPOOL_SMTP_PORT=str(shared.smtp_port),
                MAILPOOL_METRICS_PORT="0",
                MAILPOOL_WAIT_TIME="1",
            )
            pids[f"sender {n + 1}"] = stack.enter_context(child("mailpool", "sender", env=env)).pid
        busy = Busy({**shared.pids, **pids, "load generator": os.getpid()})
        started = time.time()
        asyncio.run(post_all(urls, args.emails, args.clients))
        finished = wait_delivered(shared.count_port, base + args.emails, args.timeout)
        cores = busy.cores()
    cpu = sum(cores[name] for name in pids) * (finished - started)
    return Result(args.emails / (finished - started), cpu / args.emails * 1e6, cores)


async def make_queue(endpoint: str, name: str, fifo: bool) -> str:
    config = PoolConfig(prefix="peer", shards=1, endpoint_url=endpoint, region="us-east-1")
    attributes = {"VisibilityTimeout": "300"} | ({"FifoQueue": "true"} if fifo else {})
    async with SqsClient.from_config(config) as client:
        return await client.create_queue(name, attributes)


@contextmanager
def celery_worker(args: argparse.Namespace, env: dict[str, str]) -> Iterator[int]:
    """A `celery worker` process, up once its worker_ready signal fired; yields its pid."""
    ready = pathlib.Path(env["PEER_READY_FILE"])
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "benchmarks.peer_app",
            "worker",
            "--pool",
            args.celery_pool,
            "--concurrency",
            str(args.celery_concurrency),
            "--prefetch-multiplier",
            str(args.celery_prefetch),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the celery worker did not start")
            time.sleep(0.05)
        yield process.pid
    finally:
        stop(process)


def run_celery(args: argparse.Namespace, shared: Shared) -> Result:
    """Celery's run; its CPU is that of its producer and worker processes."""
    fifo = args.celery_queue == "fifo"
    name = f"peer-{uuid.uuid4().hex[:6]}" + (".fifo" if fifo else "")
    url = asyncio.run(make_queue(shared.endpoint, name, fifo))
    endpoint = shared.endpoint
    scratch = tempfile.mkdtemp(prefix="peer-")
    env = {
        **os.environ,
        "PEER_BROKER": "sqs://" + endpoint.removeprefix("http://"),
        "PEER_QUEUE": name,
        "PEER_QUEUE_URL": url,
        "PEER_SMTP_PORT": str(shared.smtp_port),
        "PEER_PREFETCH": str(args.celery_prefetch),
        "PEER_ACKS": args.celery_acks,
        "PEER_READY_FILE": f"{scratch}/ready",
    }
    base = delivered(shared.count_port)
    with celery_worker(args, env) as worker:
        busy = Busy({**shared.pids, "celery worker": worker})
        producer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.peer_app",
                str(args.emails),
                str(args.celery_producers),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert producer.stdout is not None
        started = float(producer.stdout.readline().split()[1])
        producer_cpu = 0.0
        while producer.poll() is None:
            producer_cpu = tree_cpu_seconds(producer.pid)
            time.sleep(0.05)
        if producer.returncode:
            raise RuntimeError("the celery producer failed")
        finished = wait_delivered(shared.count_port, base + args.emails, args.timeout)
        cores = busy.cores(**{"celery producer": producer_cpu})
    cpu = (cores["celery worker"] + cores["celery producer"]) * (finished - started)
    return Result(args.emails / (finished - started), cpu / args.emails * 1e6, cores)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600.0, help="per run and system")
    parser.add_argument("--intakes", type=int, default=1)
    parser.add_argument("--senders", type=int, default=1)
    parser.add_argument("--clients", type=int, default=32, help="HTTP clients for mailpool")
    parser.add_argument("--celery-pool", default="prefork")
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--celery-prefetch", type=int, default=4)
    parser.add_argument("--celery-acks", choices=["late", "early"], default="late")
    parser.add_argument("--celery-producers", type=int, default=8)
    parser.add_argument("--celery-queue", choices=["fifo", "standard"], default="fifo")
    parser.add_argument("--plot", help="write a PNG bar chart here")
    parser.add_argument(
        "--celery-only", action="store_true", help="only Celery (to search its configuration)"
    )
    args = parser.parse_args()
    local_credentials()
    smtp_port, count_port = free_port(), free_port()
    rows: list[tuple[Result, Result]] = []
    with (
        engine_process("localsqs", None) as (endpoint, engine),
        child("benchmarks.sink", "--port", str(smtp_port), "--count-port", str(count_port)) as sink,
    ):
        shared = Shared(endpoint, smtp_port, count_port, {"localsqs": engine, "sink": sink.pid})
        for number in range(args.runs):
            # Each system goes first in turn: this shared machine's noise drifts over a run.
            if number % 2 == 1:
                celery = run_celery(args, shared)
            mailpool = Result(1.0, 1.0, {}) if args.celery_only else run_mailpool(args, shared)
            if number % 2 == 0:
                celery = run_celery(args, shared)
            rows.append((mailpool, celery))
            print(f"run {number + 1}: " + describe(mailpool, celery), flush=True)
            for system, result in (("mailpool", mailpool), ("celery", celery)):
                used = ", ".join(f"{name} {cores:.2f}" for name, cores in result.cores.items())
                print(f"  {system} cores used: {used}", flush=True)
    medians = [
        Result(
            statistics.median(row[i].rate for row in rows),
            statistics.median(row[i].cpu_us for row in rows),
            {},
        )
        for i in (0, 1)
    ]
    ratios = [mailpool.rate / celery.rate for mailpool, celery in rows]
    print(f"\nmedians of {args.runs} runs: " + describe(*medians))
    print(
        f"mailpool/celery, each run's own ratio: {statistics.median(ratios):.2f}x at the median "
        f"(runs {', '.join(f'{r:.2f}' for r in ratios)}; target >= 7)"
    )
    if args.plot:
        mailpool, celery = medians
        bars(
            args.plot,
            f"End to end on localsqs and one SMTP sink, {args.emails} emails (medians of "
            f"{args.runs})",
            "emails delivered / s",
            {"mailpool": mailpool.rate, f"Celery + SQS ({args.celery_pool})": celery.rate},
            [f"{r.rate:.0f}/s, {r.cpu_us:.0f} CPU-µs/email" for r in (mailpool, celery)],
        )


def describe(mailpool: Result, celery: Result) -> str:
    """One result line: both rates and CPU per email, and mailpool's multiple of Celery."""
    return (
        f"mailpool {mailpool.rate:.0f} delivered/s ({mailpool.cpu_us:.0f} CPU-µs/email), "
        f"celery {celery.rate:.0f} delivered/s ({celery.cpu_us:.0f} CPU-µs/email); "
        f"mailpool/celery {mailpool.rate / celery.rate:.2f}x"
    )


if __name__ == "__main__":
    main()
