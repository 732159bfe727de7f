"""Streams: a password reset behind a newsletter, with one stream and with two.

    python -m benchmarks.streams --bulk 50000 --seconds 30 --rate 20 --runs 1

On the local stack's processes (localsqs, one ``mailpool intake``, one ``mailpool sender``,
an SMTP sink that notes when each email arrives), twice in the same run (which first
alternates from run to run):

- **one stream**: 4 shards, every email on them (mailpool before streams);
- **two streams**: ``transactional:2:8,bulk:2:1:0.75`` (``make run``'s default).

Each scenario accepts a bulk backlog (``--bulk`` emails through the batch endpoint, 500 a
request, "stream": "bulk"; most without a group, as a newsletter's, one in 20 in 50 groups
whose order is checked), then sends transactional emails at a steady ``--rate`` for
``--seconds`` (in 10 groups), while the sender works through the backlog.
Reported: the transactional emails' accept → sent latency (p50, p99, max: 202 answered to
the sink's 250), bulk's delivery rate over the run, emails lost (accepted, never
delivered) and groups delivered out of order — the last two must be 0.
"""

import argparse
import asyncio
import re
import statistics
import time
import uuid
from typing import Any

import aiohttp
from aiosmtpd.smtp import SMTP, Envelope, Session

from benchmarks.engines import engine_process, free_port
from benchmarks.processes import child, local_credentials, mailpool_env
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from pool.streams import parse

_MESSAGE_ID = re.compile(rb"^Message-ID: <([0-9a-f]+)@", re.MULTILINE | re.IGNORECASE)
TWO = "transactional:2:8,bulk:2:1:0.75"


class Arrivals:
    """An SMTP sink noting when each mailpool id arrived, in arrival order."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.order: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        found = _MESSAGE_ID.search(content)
        if found is not None:
            email_id = found.group(1).decode()
            self.at.setdefault(email_id, time.time())
            self.order.append(email_id)
        return "250 OK"


#: Whether the scenario has streams (with one, an email names none).
NAMED = {"streams": False}


def email(stream: str, group: str | None) -> dict[str, Any]:
    doc = {
        "from": "shop@example.test",
        "to": "sink@example.test",
        "subject": stream,
        "text": "x" * 200,
    } | ({"group": group} if group else {})
    return doc | {"stream": stream} if NAMED["streams"] else doc


async def _bulk(http: aiohttp.ClientSession, url: str, count: int) -> list[tuple[str, str]]:
    """Accept ``count`` bulk emails, most without a group (a newsletter's are unordered),
    one in 20 in one of 50 groups (whose order is checked); (id, group) of each."""
    accepted: list[tuple[str, str]] = []
    for start in range(0, count, 500):
        numbers = range(start, min(count, start + 500))
        docs = [email("bulk", f"b{n % 50}" if n % 20 == 0 else None) for n in numbers]
        async with http.post(f"{url}/v1/emails/batch", json=docs) as response:
            answer = await response.json()
            if "results" not in answer:
                raise RuntimeError(f"the batch was refused: {answer}")
            results = answer["results"]
        accepted += [
            (r["id"], d.get("group", r.get("id", "")))
            for r, d in zip(results, docs, strict=True)
            if "id" in r
        ]
    return accepted


async def _transactional(
    http: aiohttp.ClientSession, url: str, rate: float, seconds: float
) -> list[tuple[str, str, float]]:
    """Send at a steady ``rate``; (id, group, when the 202 came) of each accepted."""
    accepted: list[tuple[str, str, float]] = []
    started = time.monotonic()

    async def one(n: int) -> None:
        group = f"t{n % 10}"
        async with http.post(f"{url}/v1/emails", json=email("transactional", group)) as r:
            if r.status == 202:
                accepted.append(((await r.json())["id"], group, time.time()))

    tasks = []
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(n)))
    await asyncio.gather(*tasks)
    return accepted


async def _until_delivered(sink: Arrivals, expected: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not expected <= sink.at.keys() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


def _out_of_order(order: list[str], sent: list[tuple[str, str]]) -> int:
    """Groups whose emails arrived in another order than they were accepted."""
    position = {email_id: k for k, email_id in reversed(list(enumerate(order)))}
    by_group: dict[str, list[str]] = {}
    for email_id, group in sent:
        by_group.setdefault(group, []).append(email_id)
    wrong = 0
    for ids in by_group.values():
        seen = [position[i] for i in ids if i in position]
        wrong += seen != sorted(seen)
    return wrong


async def scenario(endpoint: str, args: argparse.Namespace, streams: str) -> dict[str, float]:
    prefix = f"s{uuid.uuid4().hex[:6]}"
    lanes = parse(streams) if streams else ()
    NAMED["streams"] = bool(lanes)
    pool = PoolConfig(
        prefix=prefix, shards=4, endpoint_url=endpoint, region="us-east-1", streams=lanes
    )
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    sink = Arrivals()
    smtp_port, http_port = free_port(), free_port()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, hostname="sink"), "127.0.0.1", smtp_port
    )
    settings = {"MAILPOOL_STREAMS": streams} if streams else {}
    env = mailpool_env(
        endpoint,
        prefix,
        4,
        MAILPOOL_HTTP_PORT=str(http_port),
        MAILPOOL_SMTP_PORT=str(smtp_port),
        MAILPOOL_METRICS_PORT="0",
        MAILPOOL_WAIT_TIME="1",
        MAILPOOL_EVENTS="off",
        MAILPOOL_AUTH="off",
        **settings,
    )
    url = f"http://127.0.0.1:{http_port}"
    with child("mailpool", "intake", env=env), child("mailpool", "sender", env=env):
        async with aiohttp.ClientSession() as http:
            began = time.time()
            bulk = await _bulk(http, url, args.bulk)
            urgent = await _transactional(http, url, args.rate, args.seconds)
            backlog_left = len(bulk) - sum(1 for i, _ in bulk if i in sink.at)
            expected = {i for i, _ in bulk} | {i for i, _, _ in urgent}
            await _until_delivered(sink, expected, 600)
    server.close()
    latencies = sorted(sink.at[i] - t for i, _, t in urgent if i in sink.at)
    bulk_done = max((sink.at[i] for i, _ in bulk if i in sink.at), default=began)
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max": latencies[-1],
        "bulk_rate": len(bulk) / (bulk_done - began),
        "backlog_left": backlog_left,
        "lost": len(expected - sink.at.keys()),
        "out_of_order": _out_of_order(sink.order, [(i, g) for i, g in bulk])
        + _out_of_order(sink.order, [(i, g) for i, g, _ in urgent]),
    }


def describe(name: str, r: dict[str, float]) -> str:
    return (
        f"{name}: transactional accept->sent p50 {r['p50']:.2f} s, p99 {r['p99']:.2f} s, "
        f"max {r['max']:.2f} s; bulk {r['bulk_rate']:.0f}/s ({r['backlog_left']:.0f} still "
        f"queued when the transactional phase ended); lost {r['lost']:.0f}, groups out of "
        f"order {r['out_of_order']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--bulk", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    local_credentials()
    rows: list[tuple[dict[str, float], dict[str, float]]] = []
    with engine_process("localsqs", None, ["--durability", "os"]) as (endpoint, _):
        for run in range(args.runs):
            # Which goes first alternates, so that neither always meets a fresher engine.
            if run % 2:
                two = asyncio.run(scenario(endpoint, args, TWO))
                one = asyncio.run(scenario(endpoint, args, ""))
            else:
                one = asyncio.run(scenario(endpoint, args, ""))
                two = asyncio.run(scenario(endpoint, args, TWO))
            rows.append((one, two))
            print(f"run {run + 1}: " + describe("one stream", one), flush=True)
            print(f"run {run + 1}: " + describe("two streams", two), flush=True)
    med = [{k: statistics.median(r[i][k] for r in rows) for k in rows[0][i]} for i in (0, 1)]
    print(
        f"\nmedians of {args.runs} runs ({args.bulk} bulk, transactional {args.rate:g}/s "
        f"for {args.seconds:g} s):"
    )
    print("  " + describe("one stream", med[0]))
    print("  " + describe("two streams", med[1]))
    kept = med[1]["bulk_rate"] / med[0]["bulk_rate"]
    each = ", ".join(f"{two['bulk_rate'] / one['bulk_rate']:.2f}" for one, two in rows)
    print(
        f"  transactional p99: {med[1]['p99']:.2f} s with two streams vs "
        f"{med[0]['p99']:.2f} s with one; bulk keeps {kept:.2f} of its rate "
        f"(runs: {each})"
    )


if __name__ == "__main__":
    main()
