"""The lean wire against aiobotocore, both in the same run: CPU per hot call, and the CPU an
email costs the sender and intake on each wire.

    python -m benchmarks.wire --calls 300 --emails 3000 --requests 3000 --runs 3

1. Per call: this process's CPU (``time.process_time``) per call of each hot action, 4 in
   flight, with the engine in a process of its own (the embedded engine; SES v2 on moto's
   server): SendMessageBatch (10 x 500 B), ReceiveMessage (10), ChangeMessageVisibilityBatch
   (10), DeleteMessageBatch (10), BatchWriteItem (25), BatchGetItem (25), TransactWriteItems
   (10 conditional puts), GetItem, SendEmail. Target: lean ≤ 0.4 x botocore for each.
2. Sender: one ``mailpool sender`` emptying a pool of ``--emails`` (events and state on,
   an SMTP sink; then the SES provider on moto), its CPU per delivered email (/proc).
   Targets: ≤ 0.6 x botocore with SMTP, ≤ 0.5 x with SES.
3. Intake: one ``mailpool intake`` taking ``--requests`` POSTs (128 in flight; events on),
   keyless with the state store off, and keyed with it on; CPU per accepted email and
   requests/s, and the engine's CPU per email beside intake's (on AWS it runs elsewhere;
   here it shares the two cores). Targets: ≤ 0.7 x botocore; keyed ≥ 0.8 of keyless.

Medians of ``--runs``; the wires alternate which goes first.
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from aws.wire import WIRES
from benchmarks.e2e import envelope, wait_empty
from benchmarks.engines import cpu_seconds, engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env, ratio
from benchmarks.sink import delivered
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from state.config import StateConfig, new_secret
from state.table import StateTable
from tests.support.raw_aws import raw_client

BODY = "x" * 500
IN_FLIGHT = 4
SENDER = "bench@example.test"
EMAIL = {"from": SENDER, "to": "sink@example.test", "subject": "s", "text": "x"}


async def _timed(calls: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """CPU-µs of this process per call of ``one``, ``IN_FLIGHT`` at once."""
    numbers = iter(range(calls))

    async def loop() -> None:
        for n in numbers:
            await one(n)

    cpu = time.process_time()
    await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
    return (time.process_time() - cpu) / calls * 1e6


async def per_call(engine: str, moto: str, wire: str, calls: int) -> dict[str, float]:
    """CPU-µs per call of each hot action on ``wire``."""
    return {
        **await sqs_calls(engine, wire, calls),
        **await dynamodb_calls(engine, wire, calls),
        **await ses_calls(moto, wire, max(calls // 3, 10)),
    }


async def sqs_calls(engine: str, wire: str, calls: int) -> dict[str, float]:
    """CPU-µs per call of the SQS hot actions."""
    cost: dict[str, float] = {}
    async with raw_client("sqs", engine, wire) as sqs:
        name = f"w{uuid.uuid4().hex[:8]}.fifo"
        url = (await sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"}))["QueueUrl"]

        async def send(n: int) -> Any:
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": BODY,
                    "MessageGroupId": f"g{n}-{i}",
                    "MessageDeduplicationId": f"{n}-{i}",
                }
                for i in range(10)
            ]
            return await sqs.send_message_batch(QueueUrl=url, Entries=entries)

        cost["SendMessageBatch"] = await _timed(calls, send)
        receipts: list[list[str]] = []

        async def receive(_: int) -> None:
            got = await sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=300,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "MessageGroupId"],
                MessageAttributeNames=["All"],
            )
            receipts.append([m["ReceiptHandle"] for m in got.get("Messages", [])])

        cost["ReceiveMessage"] = await _timed(calls, receive)
        batches = [r for r in receipts if r]

        async def change(n: int) -> Any:
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 300}
                for i, r in enumerate(batches[n % len(batches)])
            ]
            return await sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)

        cost["ChangeMessageVisibilityBatch"] = await _timed(calls, change)

        async def delete(n: int) -> Any:
            entries = [
                {"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(batches[n % len(batches)])
            ]
            return await sqs.delete_message_batch(QueueUrl=url, Entries=entries)

        cost["DeleteMessageBatch"] = await _timed(min(calls, len(batches)), delete)
        await sqs.delete_queue(QueueUrl=url)
    return cost


async def dynamodb_calls(engine: str, wire: str, calls: int) -> dict[str, float]:
    """CPU-µs per call of the DynamoDB hot actions."""
    cost: dict[str, float] = {}
    table = f"w{uuid.uuid4().hex[:8]}"
    async with StateTable(
        StateConfig(table=table, endpoint_url=engine, region="us-east-1")
    ) as state:
        await state.provision()
    async with raw_client("dynamodb", engine, wire) as dynamodb:

        def item(n: int, i: int) -> dict[str, Any]:
            return {
                "pk": {"S": f"p{n}-{i}"},
                "sk": {"S": "status"},
                "state": {"S": "sent"},
                "at": {"N": str(time.time())},
            }

        async def write(n: int) -> Any:
            puts = [{"PutRequest": {"Item": item(n, i)}} for i in range(25)]
            return await dynamodb.batch_write_item(RequestItems={table: puts})

        cost["BatchWriteItem"] = await _timed(calls, write)

        async def read(n: int) -> Any:
            keys = [{"pk": {"S": f"p{n}-{i}"}, "sk": {"S": "status"}} for i in range(25)]
            return await dynamodb.batch_get_item(RequestItems={table: {"Keys": keys}})

        cost["BatchGetItem"] = await _timed(calls, read)

        async def claim(n: int) -> Any:
            puts = [
                {
                    "Put": {
                        "TableName": table,
                        "Item": {**item(n, i), "sk": {"S": "claim"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for i in range(10)
            ]
            return await dynamodb.transact_write_items(TransactItems=puts)

        cost["TransactWriteItems"] = await _timed(calls, claim)

        async def get(n: int) -> Any:
            key = {"pk": {"S": f"p{n}-0"}, "sk": {"S": "status"}}
            return await dynamodb.get_item(TableName=table, Key=key)

        cost["GetItem"] = await _timed(calls, get)
        await dynamodb.delete_table(TableName=table)
    return cost


async def ses_calls(moto: str, wire: str, calls: int) -> dict[str, float]:
    """CPU-µs per SES v2 SendEmail (raw MIME)."""
    async with raw_client("sesv2", moto, wire) as ses:
        await ses.create_email_identity(EmailIdentity=SENDER)
        raw = envelope().encode()

        async def send_email(_: int) -> Any:
            return await ses.send_email(
                FromEmailAddress=SENDER,
                Destination={"ToAddresses": ["sink@example.test"]},
                Content={"Raw": {"Data": raw}},
            )

        return {"SendEmail": await _timed(calls, send_email)}


async def _pool(endpoint: str, tag: str) -> PoolConfig:
    """A 4-shard pool with events on, and its state table."""
    config = PoolConfig(
        prefix=f"{tag}{uuid.uuid4().hex[:6]}",
        shards=4,
        endpoint_url=endpoint,
        region="us-east-1",
        events=True,
    )
    async with SqsClient.from_config(config) as sqs:
        await provision(sqs, config)
    state = StateConfig(table=f"{config.prefix}-state", endpoint_url=endpoint, region="us-east-1")
    async with StateTable(state) as table:
        await table.provision()
    return config


async def _fill(config: PoolConfig, count: int) -> None:
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        items = iter(range(count))

        async def loop() -> None:
            for _ in items:
                env = envelope()
                await pool.send(Outgoing(env.encode().decode(), env.group, env.id))

        await asyncio.gather(*(loop() for _ in range(64)))


def _state_on(config: PoolConfig) -> dict[str, str]:
    return {
        "MAILPOOL_STATE": "on",
        "MAILPOOL_STATE_TABLE": f"{config.prefix}-state",
        "MAILPOOL_STATE_SECRET": new_secret(),
    }


def _unwatched(pid: int) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext()


#: Wraps the measured part of a run, given the measured process's pid (py-spy, say).
Watch = Callable[[int], contextlib.AbstractContextManager[None]]


def sender_cost(
    endpoint: str,
    moto: str | None,
    sink: tuple[int, int],
    wire: str,
    emails: int,
    provider: str,
    watch: Watch = _unwatched,
) -> float:
    """CPU-µs per email of one sender emptying a pool of ``emails`` (events, state on)."""
    config = asyncio.run(_pool(endpoint, "s"))
    asyncio.run(_fill(config, emails))
    smtp_port, count_port = sink
    env = mailpool_env(
        endpoint,
        config.prefix,
        4,
        MAILPOOL_AWS_WIRE=wire,
        MAILPOOL_PROVIDERS=provider,
        MAILPOOL_SMTP_PORT=str(smtp_port),
        MAILPOOL_METRICS_PORT="0",
        MAILPOOL_CONCURRENCY="128",
        MAILPOOL_WAIT_TIME="1",
        **({"AWS_ENDPOINT_URL_SESV2": moto} if moto else {}),
        **_state_on(config),
    )
    base = delivered(count_port)
    with child("mailpool", "sender", env=env) as sender:
        cpu = cpu_seconds(sender.pid)
        with watch(sender.pid):
            if provider == "smtp":
                while delivered(count_port) < base + emails:
                    time.sleep(0.02)
            else:
                asyncio.run(wait_empty(config))
            spent = cpu_seconds(sender.pid) - cpu
    return spent / emails * 1e6


async def _post_all(url: str, count: int, keyed: bool) -> float:
    numbers = iter(range(count))
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            for number in numbers:
                headers = {"Idempotency-Key": f"k-{number}-{uuid.uuid4().hex[:8]}"} if keyed else {}
                async with http.post(f"{url}/v1/emails", json=EMAIL, headers=headers) as r:
                    assert r.status == 202, await r.text()

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(128)))
        return count / (time.monotonic() - started)


def intake_cost(
    endpoint: str,
    wire: str,
    requests: int,
    keyed: bool,
    watch: Watch = _unwatched,
    engine_pid: int | None = None,
) -> tuple[float, float, float]:
    """(CPU-µs per accepted email, requests/s, the engine's CPU-µs per email, when its
    ``engine_pid`` is given) of one intake; keyed: state on."""
    config = asyncio.run(_pool(endpoint, "i"))
    port = free_port()
    env = mailpool_env(
        endpoint,
        config.prefix,
        4,
        MAILPOOL_AWS_WIRE=wire,
        MAILPOOL_HTTP_PORT=str(port),
        **(_state_on(config) if keyed else {"MAILPOOL_STATE": "off"}),
    )
    with child("mailpool", "intake", env=env) as intake:
        asyncio.run(_post_all(f"http://127.0.0.1:{port}", 200, keyed))  # warm up
        cpu = cpu_seconds(intake.pid)
        engine_cpu = 0.0 if engine_pid is None else cpu_seconds(engine_pid)
        with watch(intake.pid):
            rate = asyncio.run(_post_all(f"http://127.0.0.1:{port}", requests, keyed))
            spent = cpu_seconds(intake.pid) - cpu
            engine_spent = 0.0 if engine_pid is None else cpu_seconds(engine_pid) - engine_cpu
    return spent / requests * 1e6, rate, engine_spent / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300, help="calls per hot action")
    parser.add_argument("--emails", type=int, default=3000, help="emails a sender delivers")
    parser.add_argument("--requests", type=int, default=3000, help="POSTs to intake")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    local_credentials()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    calls: dict[str, dict[str, list[float]]] = {w: {} for w in WIRES}
    costs: dict[str, dict[str, list[float]]] = {w: {} for w in WIRES}
    smtp_port, count_port = free_port(), free_port()
    with (
        engine_process("localsqs", None) as (endpoint, engine_pid),
        engine_process("moto", None) as (moto, _),
        child("benchmarks.sink", "--port", str(smtp_port), "--count-port", str(count_port)),
    ):
        for run in range(args.runs):
            for wire in WIRES if run % 2 == 0 else WIRES[::-1]:
                for action, us in asyncio.run(per_call(endpoint, moto, wire, args.calls)).items():
                    calls[wire].setdefault(action, []).append(us)
                mine = costs[wire]
                sink = (smtp_port, count_port)
                for provider in ("smtp", "ses"):
                    emails = args.emails if provider == "smtp" else max(args.emails // 3, 10)
                    mine.setdefault(f"sender {provider}", []).append(
                        sender_cost(endpoint, moto, sink, wire, emails, provider)
                    )
                for keyed in (False, True):
                    name = "intake keyed, state on" if keyed else "intake keyless"
                    us, rate, engine_us = intake_cost(
                        endpoint, wire, args.requests, keyed, engine_pid=engine_pid
                    )
                    mine.setdefault(name, []).append(us)
                    mine.setdefault(f"{name} req/s", []).append(rate)
                    mine.setdefault(f"{name}: engine", []).append(engine_us)
    med = statistics.median
    print(f"CPU-µs per call of this process, medians of {args.runs} runs")
    print(f"{'action':<30}{'botocore':>10}{'lean':>10}{'lean/botocore':>15}")
    for action in calls["lean"]:
        b, lean = med(calls["botocore"][action]), med(calls["lean"][action])
        print(f"{action:<30}{b:>10.0f}{lean:>10.0f}{ratio(lean, b):>15}")
    print(f"\nCPU-µs per email (req/s for rates), medians of {args.runs} runs")
    print(f"{'process':<30}{'botocore':>10}{'lean':>10}{'lean/botocore':>15}")
    for name in costs["lean"]:
        b, lean = med(costs["botocore"][name]), med(costs["lean"][name])
        print(f"{name:<30}{b:>10.0f}{lean:>10.0f}{ratio(lean, b):>15}")
    for wire in WIRES:
        keyed = med(costs[wire]["intake keyed, state on req/s"])
        keyless = med(costs[wire]["intake keyless req/s"])
        print(f"{wire}: keyed intake with the state store at {ratio(keyed, keyless)} of keyless")
        added = {
            where: med(costs[wire][f"intake keyed, state on{suffix}"])
            - med(costs[wire][f"intake keyless{suffix}"])
            for where, suffix in (("intake", ""), ("the engine", ": engine"))
        }
        print(
            f"{wire}: a key adds {added['intake']:.0f} CPU-µs per email in intake, "
            f"{added['the engine']:.0f} in the engine"
        )


if __name__ == "__main__":
    main()
