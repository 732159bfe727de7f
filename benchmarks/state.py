"""The cost of the state store: end to end with it on vs off, store calls per email, how
soon a status is readable, and the embedded engine's DynamoDB operations/s.

    python -m benchmarks.state --messages 5000 --requests 3000 --runs 3

1. End to end: ``--requests`` POSTs, each with its own Idempotency-Key, 128 at a time,
   through one ``mailpool intake`` and one ``mailpool sender`` to an SMTP sink process, with
   the state store on and off (alternating which goes first); emails/s from the first POST
   until the pool is empty, the ratio on/off (target >= 0.80), and the DynamoDB calls per
   email of both processes (their ``mailpool_state_calls_total``).
2. Each side alone: one sender emptying a pool of ``--messages`` (suppression lookups and
   status records), and one intake taking ``--requests`` keyed POSTs (a claim in a shared
   TransactWriteItems call, a batched mark after the 202); on vs off.
3. Status: ``--status`` emails one at a time through intake and a sender (state on): whether
   GET answers at once after the 202, and how long until it shows the first outcome.
4. The engine alone: conditional PutItem, GetItem, BatchWriteItem (25 items) and Query,
   at concurrency 16 for ``--seconds`` each. Reported: operations/s and the engine's
   CPU-µs per operation.
"""

import argparse
import asyncio
import os
import re
import statistics
import time
import urllib.request
import uuid
from typing import Any

import aiohttp
from aiobotocore.session import get_session

from benchmarks.e2e import fill, wait_empty
from benchmarks.engines import cpu_seconds, engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from state.config import StateConfig, new_secret
from state.table import StateTable

#: Requests in flight at once: a high-volume producer.
CONCURRENCY = 128
EMAIL = {"from": "bench@example.test", "to": "sink@example.test", "subject": "s", "text": "x"}


def _state_env(on: bool, prefix: str) -> dict[str, str]:
    if not on:
        return {"MAILPOOL_STATE": "off"}
    return {
        "MAILPOOL_STATE": "on",
        "MAILPOOL_STATE_TABLE": f"{prefix}-state",
        "MAILPOOL_STATE_SECRET": new_secret(),
    }


def fresh_stack(endpoint: str, tag: str, shards: int = 4, *, queues: bool = True) -> PoolConfig:
    """A pool of its own on ``endpoint`` (events off), its queues made unless ``queues`` is
    off (a benchmark that fills them makes them), and its state table."""
    config = PoolConfig(
        prefix=f"{tag}{uuid.uuid4().hex[:6]}",
        shards=shards,
        endpoint_url=endpoint,
        region="us-east-1",
        events=False,
    )
    if queues:
        asyncio.run(_provision(config))
    asyncio.run(_table(endpoint, config.prefix))
    return config


async def _table(endpoint: str, prefix: str) -> None:
    config = StateConfig(
        enabled=True, table=f"{prefix}-state", endpoint_url=endpoint, region="us-east-1"
    )
    async with StateTable(config) as table:
        await table.provision()


def _state_calls(metrics_port: int) -> float:
    """DynamoDB calls a process made (all actions), from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    return sum(
        float(v) for v in re.findall(r"^mailpool_state_calls_total\{[^}]*\} (\S+)$", text, re.M)
    )


def sender_rate(endpoint: str, sink_port: int, messages: int, on: bool) -> tuple[float, float]:
    """Messages/s of one sender emptying a pool of ``messages``; store calls per message."""
    config = fresh_stack(endpoint, "s", queues=False)
    asyncio.run(fill(config, messages))
    metrics_port = free_port()
    env = mailpool_env(
        endpoint,
        config.prefix,
        4,
        MAILPOOL_SMTP_PORT=str(sink_port),
        MAILPOOL_METRICS_PORT=str(metrics_port),
        MAILPOOL_CONCURRENCY="128",
        MAILPOOL_WAIT_TIME="1",
        MAILPOOL_EVENTS="off",
        **_state_env(on, config.prefix),
    )
    started = time.monotonic()
    with child("mailpool", "sender", env=env):
        asyncio.run(wait_empty(config))
        took = time.monotonic() - started
        calls = _state_calls(metrics_port) if on else 0.0
    return messages / took, calls / messages


async def _post_all(url: str, count: int, concurrency: int) -> float:
    """Requests/s of ``count`` keyed POSTs at ``concurrency``."""
    numbers = iter(range(count))
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            for number in numbers:
                headers = {"Idempotency-Key": f"bench-{number}-{uuid.uuid4().hex[:8]}"}
                async with http.post(f"{url}/v1/emails", json=EMAIL, headers=headers) as r:
                    assert r.status == 202, await r.text()

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.monotonic() - started)


def end_to_end(endpoint: str, sink_port: int, requests: int, on: bool) -> tuple[float, float]:
    """Emails/s from the first keyed POST to the last delivery through one intake and one
    sender; and both processes' DynamoDB calls per email."""
    config = fresh_stack(endpoint, "e")
    port, metrics_port = free_port(), free_port()
    common = mailpool_env(
        endpoint, config.prefix, 4, MAILPOOL_EVENTS="off", **_state_env(on, config.prefix)
    )
    sender = {
        **common,
        "MAILPOOL_SMTP_PORT": str(sink_port),
        "MAILPOOL_CONCURRENCY": "128",
        "MAILPOOL_METRICS_PORT": str(metrics_port),
        "MAILPOOL_WAIT_TIME": "1",
    }
    with (
        child("mailpool", "sender", env=sender),
        child("mailpool", "intake", env={**common, "MAILPOOL_HTTP_PORT": str(port)}),
    ):
        started = time.monotonic()
        asyncio.run(_post_all(f"http://127.0.0.1:{port}", requests, CONCURRENCY))
        asyncio.run(wait_empty(config))
        took = time.monotonic() - started
        calls = _state_calls(metrics_port) + _state_calls(port) if on else 0.0
    return requests / took, calls / requests


def intake_rate(endpoint: str, requests: int, on: bool) -> float:
    """Keyed requests/s one intake accepts with the state store on or off."""
    config = fresh_stack(endpoint, "i")
    port = free_port()
    env = mailpool_env(
        endpoint,
        config.prefix,
        4,
        MAILPOOL_HTTP_PORT=str(port),
        MAILPOOL_EVENTS="off",
        **_state_env(on, config.prefix),
    )
    with child("mailpool", "intake", env=env):
        return asyncio.run(_post_all(f"http://127.0.0.1:{port}", requests, CONCURRENCY))


async def _provision(config: PoolConfig) -> None:
    async with SqsClient.from_config(config) as sqs:
        await provision(sqs, config)


async def _readable(url: str, count: int) -> tuple[int, list[float]]:
    """(answers at once after the 202, seconds until the first outcome) of ``count`` emails."""
    at_once, delays = 0, []
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            async with http.post(f"{url}/v1/emails", json=EMAIL) as response:
                email_id = (await response.json())["id"]
            accepted = time.monotonic()
            first = True
            while True:
                async with http.get(f"{url}/v1/emails/{email_id}") as response:
                    found = response.status == 200
                    state = (await response.json()).get("state") if found else None
                if first:
                    at_once += found
                    first = False
                if state not in (None, "queued"):
                    delays.append(time.monotonic() - accepted)
                    break
                await asyncio.sleep(0.005)
    return at_once, delays


def readability(endpoint: str, sink_port: int, count: int) -> tuple[int, float, float]:
    """(of ``count``, readable at once; median and worst seconds until the first outcome)."""
    config = fresh_stack(endpoint, "r", shards=2)
    port = free_port()
    state = _state_env(True, config.prefix)
    common = mailpool_env(endpoint, config.prefix, 2, MAILPOOL_EVENTS="off", **state)
    with (
        child(
            "mailpool",
            "sender",
            env={
                **common,
                "MAILPOOL_SMTP_PORT": str(sink_port),
                "MAILPOOL_METRICS_PORT": "0",
                "MAILPOOL_WAIT_TIME": "2",
            },
        ),
        child("mailpool", "intake", env={**common, "MAILPOOL_HTTP_PORT": str(port)}),
    ):
        at_once, delays = asyncio.run(_readable(f"http://127.0.0.1:{port}", count))
    return at_once, statistics.median(delays), max(delays)


async def _engine_ops(endpoint: str, seconds: float) -> dict[str, int]:
    """Operations of each kind completed in ``seconds`` each, at concurrency 16."""
    table = f"bench-{uuid.uuid4().hex[:6]}"
    done: dict[str, int] = {}
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=endpoint
    ) as ddb:
        await ddb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
        )
        counter = iter(range(10**9))

        def item(n: int) -> dict[str, Any]:
            return {"pk": {"S": f"p{n % 1000}"}, "sk": {"S": f"s{n}"}, "v": {"N": str(n)}}

        kinds = {
            "PutItem (conditional)": lambda n: ddb.put_item(
                TableName=table, Item=item(n), ConditionExpression="attribute_not_exists(pk)"
            ),
            "GetItem": lambda n: ddb.get_item(
                TableName=table, Key={"pk": {"S": f"p{n % 1000}"}, "sk": {"S": f"s{n}"}}
            ),
            "BatchWriteItem (25)": lambda n: ddb.batch_write_item(
                RequestItems={
                    table: [{"PutRequest": {"Item": item(n * 25 + i + 10**8)}} for i in range(25)]
                }
            ),
            "Query": lambda n: ddb.query(
                TableName=table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": f"p{n % 1000}"}},
                Limit=10,
            ),
        }
        for kind, call in kinds.items():
            count = 0
            until = time.monotonic() + seconds

            async def worker(call: Any = call, until: float = until) -> None:
                nonlocal count
                while time.monotonic() < until:
                    await call(next(counter))
                    count += 1

            await asyncio.gather(*(worker() for _ in range(16)))
            done[kind] = count
    return done


def engine_rates(seconds: float) -> dict[str, tuple[float, float]]:
    """Per kind: operations/s of a fresh engine and its CPU-µs per operation."""
    with engine_process("localsqs", None) as (endpoint, pid):
        rates: dict[str, tuple[float, float]] = {}
        cpu0 = cpu_seconds(pid)
        started = time.monotonic()
        counts = asyncio.run(_engine_ops(endpoint, seconds))
        total_cpu = cpu_seconds(pid) - cpu0
        wall = time.monotonic() - started
        share = total_cpu / max(wall, 1e-6)  # the engine's cores busy, on average
        for kind, count in counts.items():
            rates[kind] = (count / seconds, share * seconds / max(count, 1) * 1e6)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--status", type=int, default=30, help="emails timed for status")
    args = parser.parse_args()
    local_credentials()
    os.environ.setdefault("AWS_REGION", "us-east-1")
    sink_port = free_port()
    send_ratio, intake_ratio, calls, on_rates, off_rates, in_on, in_off = ([] for _ in range(7))
    e2e_on, e2e_off, e2e_ratio, e2e_calls = ([] for _ in range(4))
    with (
        engine_process("localsqs", None) as (endpoint, _),
        child("benchmarks.sink", "--port", str(sink_port)),
    ):
        for run in range(args.runs):
            order = (True, False) if run % 2 == 0 else (False, True)
            sent = {on: sender_rate(endpoint, sink_port, args.messages, on) for on in order}
            took = {on: intake_rate(endpoint, args.requests, on) for on in order}
            through = {on: end_to_end(endpoint, sink_port, args.requests, on) for on in order}
            e2e_on.append(through[True][0])
            e2e_off.append(through[False][0])
            e2e_ratio.append(through[True][0] / through[False][0])
            e2e_calls.append(through[True][1])
            on_rates.append(sent[True][0])
            off_rates.append(sent[False][0])
            send_ratio.append(sent[True][0] / sent[False][0])
            calls.append(sent[True][1])
            in_on.append(took[True])
            in_off.append(took[False])
            intake_ratio.append(took[True] / took[False])
            print(
                f"run {run + 1}: end to end (keyed) state on {through[True][0]:.0f}/s, off "
                f"{through[False][0]:.0f}/s, ratio {e2e_ratio[-1]:.2f}, "
                f"{through[True][1]:.3f} store calls/email;",
                flush=True,
            )
            print(
                f"       sender state on {sent[True][0]:.0f}/s, off "
                f"{sent[False][0]:.0f}/s, ratio {send_ratio[-1]:.2f}, "
                f"{sent[True][1]:.3f} store calls/email; intake (keyed) on {took[True]:.0f}/s, "
                f"off {took[False]:.0f}/s, ratio {intake_ratio[-1]:.2f}",
                flush=True,
            )
        at_once, median_s, worst_s = readability(endpoint, sink_port, args.status)
    rates = engine_rates(args.seconds)
    median = statistics.median
    print(
        f"\nmedians of {args.runs} runs: end to end (intake with Idempotency-Keys, sender) "
        f"with state {median(e2e_on):.0f}/s, without {median(e2e_off):.0f}/s, ratio "
        f"{median(e2e_ratio):.2f} (target >= 0.80), {median(e2e_calls):.3f} DynamoDB calls "
        f"per email (intake and sender)"
    )
    print(
        f"sender alone with state {median(on_rates):.0f}/s, without "
        f"{median(off_rates):.0f}/s, ratio {median(send_ratio):.2f}, "
        f"{median(calls):.3f} DynamoDB calls per email; intake with keys, state on "
        f"{median(in_on):.0f}/s, off {median(in_off):.0f}/s, ratio {median(intake_ratio):.2f}"
    )
    print(
        f"status: {at_once}/{args.status} readable at once after the 202 (queued); first outcome "
        f"readable after {median_s * 1000:.0f} ms median, {worst_s * 1000:.0f} ms worst"
    )
    for kind, (per_s, us) in rates.items():
        print(f"engine {kind}: {per_s:.0f} operations/s, {us:.0f} CPU-µs each")


if __name__ == "__main__":
    main()
