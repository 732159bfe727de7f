"""The Lambda worker: emails/s per concurrent execution, cold start, and duplicates.

    python -m benchmarks.lambda_worker --messages 3000 --runs 3 --duplicates 4000

1. **Rate.** A pool of 4 shards on localsqs is filled with ``--messages`` envelopes and
   emptied into an SMTP sink process, in the same run: by ``mailpool sender`` (one process,
   128 in flight), and by ``mailpool lambda-source`` (the Lambda worker, invoked by a local
   event source) with 1 and with 8 invocations at once (batches of 10). Reported: emails/s
   and CPU-µs per email of each; with one invocation at a time, emails/s is what one
   concurrent execution delivers (the local source's own receives and deletes are in the
   same process: on Lambda the mapping makes them, outside the function's bill).
2. **Cold start.** The deployment package (``mailpool deploy package``) is unpacked into an
   empty directory; an isolated interpreter (``-I -S``) imports the handler and answers a
   one-message event from the engine (the state secret, the clients and the loop made on
   the way), then a second, warm one. Reported: import, first and warm invocation seconds.
3. **Duplicates.** A standard-queue pool on an engine that stores ``--dup-rate`` of the
   messages twice (one message ID, two receipts, as SQS's at-least-once delivery may);
   ``--duplicates`` emails are delivered by the Lambda worker without and with its claim
   (a conditional write in the state table before each send). Reported: sends beyond the
   first per 100,000 emails, each way.
"""

import argparse
import asyncio
import collections
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import uuid
import zipfile
from typing import Any

from benchmarks.e2e import drain_rate, fill, wait_empty
from benchmarks.engines import engine_process, free_port
from benchmarks.processes import child, local_credentials
from core.envelope import Envelope
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers.base import Accepted
from serverless.config import LambdaConfig
from serverless.records import record_of
from serverless.service import LocalLambdaService
from serverless.worker import LambdaWorker
from state.config import StateConfig
from state.table import StateTable

SHARDS = 4


COLD = """
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from serverless.handler import handler
imported = time.perf_counter() - t0
class Context:
    def get_remaining_time_in_millis(self):
        return 60_000
times = []
for path in sys.argv[2:]:
    t = time.perf_counter()
    answer = handler(json.load(open(path)), Context())
    assert answer == {"batchItemFailures": []}, answer
    times.append(time.perf_counter() - t)
print(json.dumps([imported, *times]))
"""


async def _one_event(config: PoolConfig, shard: int) -> dict[str, Any]:
    async with SqsClient.from_config(config) as client:
        url = await client.queue_url(config.queue_name(shard))
        arn = (await client.attributes(url, ["QueueArn"]))["QueueArn"]
        raw = await client.receive_raw(url, max_messages=1, wait_s=2, visibility_s=60)
    return {"Records": [record_of(m, arn) for m in raw]}


async def _events(config: PoolConfig) -> list[dict[str, Any]]:
    await fill(config, 2)
    found: list[dict[str, Any]] = []
    for shard in range(config.shards):
        while len(found) < 2 and (event := await _one_event(config, shard))["Records"]:
            found.append(event)
    return found


def cold_start(endpoint: str, sink: int, package: pathlib.Path) -> list[float]:
    """Seconds: import, first invocation, warm invocation (the package alone)."""
    config = PoolConfig(
        prefix=f"c{uuid.uuid4().hex[:6]}",
        shards=1,
        endpoint_url=endpoint,
        region="us-east-1",
        events=False,
    )
    events = asyncio.run(_events(config))
    with tempfile.TemporaryDirectory(prefix="cold-") as work:
        task = pathlib.Path(work, "task")
        with zipfile.ZipFile(package) as archive:
            archive.extractall(task)
        paths = []
        for k, event in enumerate(events):
            paths.append(str(pathlib.Path(work, f"event{k}.json")))
            pathlib.Path(paths[-1]).write_text(json.dumps(event))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "MAILPOOL_QUEUE_PREFIX": config.prefix,
            "MAILPOOL_SHARDS": "1",
            "MAILPOOL_EVENTS": "off",
            "MAILPOOL_PROVIDERS": "smtp",
            "MAILPOOL_SMTP_PORT": str(sink),
            "MAILPOOL_LOG_LEVEL": "WARNING",
        }
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", COLD, str(task), *paths],
            capture_output=True,
            text=True,
            env=env,
            cwd=task,
            check=True,
            timeout=120,
        )
    times: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


class Counting:
    """A provider that takes every email and counts the sends of each."""

    name = "count"

    def __init__(self) -> None:
        self.sends: collections.Counter[str] = collections.Counter()

    async def send(self, envelope: Envelope) -> Accepted:
        self.sends[envelope.id] += 1
        return Accepted()

    async def aclose(self) -> None:
        pass


async def duplicates(endpoint: str, emails: int, claims: bool) -> float:
    """Sends beyond the first per 100,000 emails, on a standard pool of a doubling engine."""
    pool = PoolConfig(
        prefix=f"d{uuid.uuid4().hex[:6]}",
        shards=SHARDS,
        endpoint_url=endpoint,
        region="us-east-1",
        queue_type="standard",
        events=False,
        visibility_timeout_s=5,
    )
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    state = StateConfig(
        enabled=True,
        table=f"{pool.prefix}-state",
        endpoint_url=endpoint,
        region="us-east-1",
        secret=b"b" * 32,
    )
    async with StateTable(state) as table:
        await table.provision()
    await fill(pool, emails)
    provider = Counting()
    sender = SenderConfig(wait_time_s=1, metrics_port=0)
    config = LambdaConfig(max_concurrency=8)
    worker = LambdaWorker(pool, sender, config, provider, state=state, claims=claims)
    async with LocalLambdaService(worker, pool, wait_s=1):
        await wait_empty(pool)
    assert len(provider.sends) == emails, "an email was not sent"
    extra = sum(provider.sends.values()) - emails
    return extra / emails * 100_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--duplicates", type=int, default=4000, help="emails, each way")
    parser.add_argument("--dup-rate", type=float, default=0.01, help="copies the engine makes")
    parser.add_argument("--package", help="a built package (default: build one)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    sink = free_port()
    package = pathlib.Path(args.package) if args.package else None
    if package is None:
        from mailpool.package import build

        package = build(pathlib.Path(tempfile.mkdtemp(prefix="pkg-")) / "mailpool-lambda.zip").path
    rows: list[list[float]] = []
    with (
        engine_process("localsqs", None) as (endpoint, _),
        engine_process("localsqs", None, ["--duplicates", str(args.dup_rate)]) as (doubling, _),
        child("benchmarks.sink", "--port", str(sink)),
    ):
        for run in range(args.runs):
            row = [
                *drain_rate(endpoint, sink, args.messages, MAILPOOL_LAMBDA_CONCURRENCY="1"),
                *drain_rate(
                    endpoint,
                    sink,
                    args.messages,
                    command="lambda-source",
                    MAILPOOL_LAMBDA_CONCURRENCY="1",
                ),
                *drain_rate(
                    endpoint,
                    sink,
                    args.messages,
                    command="lambda-source",
                    MAILPOOL_LAMBDA_CONCURRENCY="8",
                ),
                *cold_start(endpoint, sink, package),
                asyncio.run(duplicates(doubling, args.duplicates, claims=False)),
                asyncio.run(duplicates(doubling, args.duplicates, claims=True)),
            ]
            rows.append(row)
            print(f"run {run + 1}: " + describe(row), flush=True)
    medians = [statistics.median(r[i] for r in rows) for i in range(len(rows[0]))]
    print(
        f"\nmedians of {args.runs} runs (engine copies {args.dup_rate:.0%} of standard-queue "
        f"messages): " + describe(medians)
    )


def describe(row: list[float]) -> str:
    s, s_us, one, one_us, eight, eight_us, imported, first, warm, without, with_ = row
    return (
        f"sender {s:.0f}/s ({s_us:.0f} CPU-µs/email); Lambda worker, 1 at once {one:.0f}/s "
        f"({one_us:.0f} CPU-µs/email), 8 at once {eight:.0f}/s ({eight_us:.0f}); "
        f"cold start: import {imported:.2f} s, first invocation {first:.2f} s, warm "
        f"{warm * 1000:.0f} ms; duplicates per 100,000: {without:.0f} without the claim, "
        f"{with_:.0f} with it"
    )


if __name__ == "__main__":
    main()
