"""``mailpool-loadtest``: an open-loop load generator for mailpool that measures delivery.

Requests are *scheduled* (a fixed rate, or a ramp) and each one's latency is measured from
its scheduled time, so a server that slows down cannot hide it by slowing the generator
(no coordinated omission); at most ``--max-in-flight`` are under way, and one that waits
for a slot waits on its own clock. Accept latency runs to the API's answer; **delivery
latency** runs to the ``created_at`` of the email's ``email.sent`` event, received (and
its signature verified) by a webhook endpoint the load tester runs — and, separately, to
that event's arrival.

    mailpool-loadtest http://127.0.0.1:8080 --rate 200 --seconds 30 \\
        --webhook-port 8099 --webhook-secret whsec_... --json result.json
"""

import argparse
import asyncio
import base64
import datetime
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from hdrh.histogram import HdrHistogram

from mailpool_client.webhooks import InvalidWebhook, verify

#: A request goes out up to this much before its time rather than a timer's tick after it.
EARLY_S = 0.001
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
#: Latencies are kept in microseconds, 1 µs to 1 hour, 3 significant digits.
_LOWEST, _HIGHEST, _DIGITS = 1, 3_600_000_000, 3


def histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST, _HIGHEST, _DIGITS)


def summary(h: HdrHistogram) -> dict[str, float | None]:
    """Percentiles in milliseconds (None when nothing was recorded)."""
    if h.get_total_count() == 0:
        return {name: None for name in PERCENTILES}
    return {name: h.get_value_at_percentile(p) / 1000 for name, p in PERCENTILES.items()}


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What to send: when (rate or ramp), how (single or batch), what (sizes, groups)."""

    url: str
    rate: float
    seconds: float
    ramp_to: float | None = None
    max_in_flight: int = 1000
    batch: int = 1
    sizes: tuple[tuple[int, float], ...] = ((1000, 1.0),)
    attachment_share: float = 0.0
    groups: int = 0
    api_key: str | None = None
    #: Requests that go at once, every ``burst / rate`` seconds (1: evenly spaced). A
    #: generator with N workers ticking together (hey -c N) sends in bursts of N; so do
    #: producers woken by the same timer.
    burst: int = 1

    def schedule(self) -> list[float]:
        """Each request's offset from the start, in seconds (open loop)."""
        if self.ramp_to is None:
            count = int(self.rate * self.seconds)
            return [(i - i % self.burst) / self.rate for i in range(count)]
        # rate(t) = r0 + (r1 - r0) t / T: the i-th request is where the integral reaches i.
        r0, r1, span = self.rate, self.ramp_to, self.seconds
        total = int((r0 + r1) / 2 * span)
        slope = (r1 - r0) / span
        offsets = []
        for i in range(total):
            if slope == 0:
                offsets.append(i / r0)
            else:
                offsets.append((-r0 + (r0 * r0 + 2 * slope * i) ** 0.5) / slope)
        return offsets

    def email(self, n: int) -> dict[str, Any]:
        """The n-th email: a body of a size drawn from ``sizes``, maybe an attachment."""
        size = random.choices([s for s, _ in self.sizes], [w for _, w in self.sizes])[0]
        doc: dict[str, Any] = {
            "from": "loadtest@example.test",
            "to": f"sink-{n % 1000}@example.test",
            "subject": f"load test {n}",
            "text": "x" * size,
        }
        if self.groups:
            doc["group"] = f"g{n % self.groups}"
        if self.attachment_share and random.random() < self.attachment_share:
            blob = base64.b64encode(os.urandom(size)).decode()
            doc["attachments"] = [{"filename": "load.bin", "content": blob}]
        return doc


@dataclass
class Tally:
    """What happened, as it happens."""

    started_mono: float = 0.0
    started_wall: float = 0.0
    scheduled: int = 0
    sent: int = 0
    accepted: int = 0
    in_flight: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    accept: HdrHistogram = field(default_factory=histogram)
    delivery: HdrHistogram = field(default_factory=histogram)
    arrival: HdrHistogram = field(default_factory=histogram)
    #: Accepted email id -> its scheduled wall-clock time.
    pending: dict[str, float] = field(default_factory=dict)
    delivered: int = 0
    bad_webhooks: int = 0
    timeline: list[tuple[float, float]] = field(default_factory=list)


async def _request(
    http: aiohttp.ClientSession, plan: Plan, tally: Tally, n: int, due_mono: float
) -> None:
    due_wall = tally.started_wall + (due_mono - tally.started_mono)
    # Late (the server held the slots, or this process was busy): timed from the schedule.
    # Early by up to EARLY_S (timer resolution): timed from when it really went.
    start = min(due_mono, time.monotonic())
    body: Any
    if plan.batch > 1:
        path, body = "/v1/emails/batch", [plan.email(n * plan.batch + i) for i in range(plan.batch)]
    else:
        path, body = "/v1/emails", plan.email(n)
    tally.sent += 1
    try:
        async with http.post(plan.url + path, json=body) as answer:
            doc = await answer.json(content_type=None)
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        tally.refusals[f"0 {type(exc).__name__}"] += 1
        return
    finally:
        took = time.monotonic() - start
        tally.accept.record_value(max(_LOWEST, int(took * 1e6)))
        tally.timeline.append((due_mono - tally.started_mono, took))
    if plan.batch > 1 and isinstance(doc, dict) and "results" in doc:
        for entry in doc["results"]:
            if "id" in entry:
                tally.accepted += 1
                tally.pending[entry["id"]] = due_wall
            else:
                error = entry.get("error", {})
                tally.refusals[f"{error.get('status', status)} {error.get('code', '?')}"] += 1
        return
    if status == 202:
        tally.accepted += 1
        tally.pending[doc["id"]] = due_wall
    else:
        code = doc.get("error", {}).get("code", "?") if isinstance(doc, dict) else "?"
        tally.refusals[f"{status} {code}"] += plan.batch


async def drive(plan: Plan, tally: Tally, progress: bool) -> float:
    """Send on schedule; the seconds it took until the last answer."""
    offsets = plan.schedule()
    tally.scheduled = len(offsets)
    slots = asyncio.Semaphore(plan.max_in_flight)
    headers = {"Authorization": f"Bearer {plan.api_key}"} if plan.api_key else {}
    connector = aiohttp.TCPConnector(limit=plan.max_in_flight)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        tasks: set[asyncio.Task[None]] = set()
        tally.started_mono, tally.started_wall = time.monotonic(), time.time()
        reporter = asyncio.create_task(_report(tally)) if progress else None

        async def one(n: int, due: float) -> None:
            async with slots:  # a request that waits for a slot waits on its own clock
                tally.in_flight += 1
                try:
                    await _request(http, plan, tally, n, due)
                finally:
                    tally.in_flight -= 1

        for n, offset in enumerate(offsets):
            due = tally.started_mono + offset
            wait = due - time.monotonic() - EARLY_S
            if wait > 0:  # timers fire up to a millisecond late (uvloop's resolution)
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(n, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        took = time.monotonic() - tally.started_mono
        if reporter is not None:
            reporter.cancel()
    return took


async def _report(tally: Tally) -> None:
    while True:
        await asyncio.sleep(1.0)
        elapsed = time.monotonic() - tally.started_mono
        p99 = tally.accept.get_value_at_percentile(99) / 1000 if tally.sent else 0
        print(
            f"\r{elapsed:5.0f}s sent {tally.sent} accepted {tally.accepted} "
            f"refused {sum(tally.refusals.values())} in flight {tally.in_flight} "
            f"accept p99 {p99:.1f} ms delivered {tally.delivered}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )


class Receiver:
    """The webhook endpoint: verifies each event and times every ``email.sent``."""

    def __init__(self, tally: Tally, secret: str) -> None:
        self.tally = tally
        self.secret = secret

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        try:
            event = verify(body, request.headers, self.secret)
        except InvalidWebhook:
            self.tally.bad_webhooks += 1
            return web.Response(status=401)
        if event.type == "email.sent" and event.email_id in self.tally.pending:
            due = self.tally.pending.pop(event.email_id)
            self.tally.delivered += 1
            if event.created_at:
                at = datetime.datetime.fromisoformat(event.created_at.replace("Z", "+00:00"))
                self.tally.delivery.record_value(max(_LOWEST, int((at.timestamp() - due) * 1e6)))
            self.tally.arrival.record_value(max(_LOWEST, int((arrived - due) * 1e6)))
        return web.Response(status=204)


def result(plan: Plan, tally: Tally, took: float) -> dict[str, Any]:
    """The figures, as ``--json`` writes them."""
    emails = tally.scheduled * plan.batch
    return {
        "offered_per_s": emails / plan.seconds if plan.seconds else 0.0,
        "accepted_per_s": tally.accepted / took if took else 0.0,
        "requests": tally.scheduled,
        "accepted": tally.accepted,
        "refusals": dict(tally.refusals),
        "accept_latency_ms": summary(tally.accept),
        "delivery_latency_ms": summary(tally.delivery),
        "event_arrival_latency_ms": summary(tally.arrival),
        "delivered": tally.delivered,
        "undelivered": len(tally.pending),
        "bad_webhooks": tally.bad_webhooks,
        "seconds": took,
    }


def _sizes(text: str) -> tuple[tuple[int, float], ...]:
    """``1k:80,10k:15,100k:5`` -> ((1000, 80), (10000, 15), (100000, 5))."""
    mix = []
    for part in text.split(","):
        size, _, weight = part.partition(":")
        factor = {"k": 1000, "m": 1_000_000}.get(size[-1:].lower(), 1)
        number = size[:-1] if factor > 1 else size
        mix.append((int(float(number) * factor), float(weight or 1)))
    return tuple(mix)


def plot(tally: Tally, path: str) -> None:
    """Accept latency of each request against its scheduled time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    xs = [t for t, _ in tally.timeline]
    ys = [took * 1000 for _, took in tally.timeline]
    axis.scatter(xs, ys, s=2)
    axis.set_xlabel("scheduled at (s)")
    axis.set_ylabel("accept latency (ms)")
    axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(path)


async def run(plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    runner = None
    if args.webhook_port is not None:
        receiver = Receiver(tally, args.webhook_secret)
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.webhook_host, args.webhook_port).start()
    try:
        took = await drive(plan, tally, progress=not args.quiet)
        if runner is not None:
            until = time.monotonic() + args.settle
            while tally.pending and time.monotonic() < until:  # noqa: ASYNC110 - HTTP fills it
                await asyncio.sleep(0.1)
    finally:
        if runner is not None:
            await runner.cleanup()
    if not args.quiet:
        print(file=sys.stderr)
    if args.plot:
        plot(tally, args.plot)
    return result(plan, tally, took)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mailpool-loadtest", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add = parser.add_argument
    add("url", help="the intake's base URL")
    add("--rate", type=float, default=100.0, help="requests/s (where a ramp starts)")
    add("--ramp-to", type=float, help="ramp linearly to this many requests/s")
    add("--seconds", type=float, default=10.0, help="how long to send")
    add("--max-in-flight", type=int, default=1000, help="requests under way at most")
    add("--batch", type=int, default=1, help="emails per request (the batch endpoint above 1)")
    add("--sizes", default="1k:1", help="body sizes and weights: 1k:80,10k:15,100k:5")
    add("--attachments", type=float, default=0.0, help="the share of emails with a file")
    add("--groups", type=int, default=0, help="spread emails over this many groups")
    add("--burst", type=int, default=1, help="send N at once every N/rate s (hey -c N's pattern)")
    add("--api-key", default=os.environ.get("MAILPOOL_API_KEY"), help="or MAILPOOL_API_KEY")
    add("--webhook-port", type=int, help="run a webhook endpoint here, to time delivery")
    add("--webhook-host", default="127.0.0.1", help="where that endpoint listens")
    add("--webhook-secret", default=os.environ.get("MAILPOOL_WEBHOOK_SECRET", ""))
    add("--settle", type=float, default=30.0, help="seconds to wait for the last events")
    add("--json", help="write the figures to this file")
    add("--plot", help="draw accept latency over time to this PNG (needs matplotlib)")
    add("--quiet", action="store_true", help="no progress line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.burst < 1 or (args.burst > 1 and args.ramp_to is not None):
        raise SystemExit("--burst is at least 1, and goes with a steady --rate (no --ramp-to)")
    if args.webhook_port is not None and not args.webhook_secret:
        raise SystemExit("--webhook-secret (or MAILPOOL_WEBHOOK_SECRET) is needed to verify events")
    plan = Plan(
        url=args.url.rstrip("/"),
        rate=args.rate,
        ramp_to=args.ramp_to,
        seconds=args.seconds,
        max_in_flight=args.max_in_flight,
        batch=args.batch,
        sizes=_sizes(args.sizes),
        attachment_share=args.attachments,
        groups=args.groups,
        api_key=args.api_key,
        burst=args.burst,
    )
    try:
        import uvloop

        figures = uvloop.run(run(plan, args))
    except ImportError:
        figures = asyncio.run(run(plan, args))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
