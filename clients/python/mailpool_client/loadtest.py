"""``mailpool-loadtest``: an open-loop load generator for mailpool that measures delivery.

Requests are *scheduled* (a fixed rate, or a ramp) and each one's latency is measured from
its scheduled time, so a server that slows down cannot hide it by slowing the generator
(no coordinated omission); at most ``--max-in-flight`` are under way, and one that waits
for a slot waits on its own clock. Accept latency runs to the API's answer; **delivery
latency** runs to the ``created_at`` of the email's ``email.sent`` event, received (and
its signature verified) by a webhook endpoint the load tester runs — and, separately, to
that event's arrival. Requests go out from sender processes of their own (``--senders``),
prepared ahead of their time, apart from the webhook endpoint; how late each left against
its schedule (the send lag) is reported beside the latencies, with a warning when it is a
noticeable share of them.

    mailpool-loadtest http://127.0.0.1:8080 --rate 200 --seconds 30 \\
        --webhook-port 8099 --webhook-secret whsec_... --json result.json
"""

import argparse
import asyncio
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from hdrh.histogram import HdrHistogram

from mailpool_client.loadgen import Plan, Senders, Tally, cores, drive, histogram, micros, warn
from mailpool_client.webhooks import InvalidWebhook, verify

__all__ = ["Plan", "Tally", "drive", "main", "result"]

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
#: The send lag's p99, as a share of the accept latency's p99, past which the generator is
#: said to be a limit of what it measures (and lag past 1 ms).
LAG_SHARE = 0.1


def summary(h: HdrHistogram) -> dict[str, float | None]:
    """Percentiles in milliseconds (None when nothing was recorded)."""
    if h.get_total_count() == 0:
        return {name: None for name in PERCENTILES}
    return {name: h.get_value_at_percentile(p) / 1000 for name, p in PERCENTILES.items()}


@dataclass
class Deliveries:
    """What the webhook endpoint saw: each ``email.sent`` by email id (its ``created_at``
    and when it arrived), matched to the accepted emails once the senders are done."""

    sent: dict[str, tuple[float | None, float]] = field(default_factory=dict)
    bad_webhooks: int = 0
    delivery: HdrHistogram = field(default_factory=histogram)
    arrival: HdrHistogram = field(default_factory=histogram)
    delivered: int = 0

    def match(self, pending: dict[str, float]) -> None:
        """Time every accepted email whose event came (it leaves ``pending``)."""
        for email_id in [i for i in pending if i in self.sent]:
            due = pending.pop(email_id)
            created_at, arrived = self.sent.pop(email_id)
            self.delivered += 1
            if created_at is not None:
                self.delivery.record_value(micros(created_at - due))
            self.arrival.record_value(micros(arrived - due))


class Receiver:
    """The webhook endpoint: verifies each event and keeps every ``email.sent``."""

    def __init__(self, deliveries: Deliveries, secret: str) -> None:
        self.deliveries = deliveries
        self.secret = secret

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        try:
            event = verify(body, request.headers, self.secret)
        except InvalidWebhook:
            self.deliveries.bad_webhooks += 1
            return web.Response(status=401)
        if event.type == "email.sent" and event.email_id:
            created_at = None
            if event.created_at:
                at = datetime.datetime.fromisoformat(event.created_at.replace("Z", "+00:00"))
                created_at = at.timestamp()
            self.deliveries.sent[event.email_id] = (created_at, arrived)
        return web.Response(status=204)


def result(
    plan: Plan, tally: Tally, took: float, deliveries: Deliveries | None = None
) -> dict[str, Any]:
    """The figures, as ``--json`` writes them."""
    emails = tally.scheduled * plan.batch
    seen = deliveries or Deliveries()
    return {
        "offered_per_s": emails / plan.seconds if plan.seconds else 0.0,
        # Over the schedule's span, or longer when the last answers came later.
        "accepted_per_s": tally.accepted / max(took, plan.seconds) if took else 0.0,
        "requests": tally.scheduled,
        "accepted": tally.accepted,
        "refusals": dict(tally.refusals),
        "accept_latency_ms": summary(tally.accept),
        "send_lag_ms": summary(tally.lag),
        "delivery_latency_ms": summary(seen.delivery),
        "event_arrival_latency_ms": summary(seen.arrival),
        "delivered": seen.delivered,
        "undelivered": len(tally.pending) if deliveries is not None else 0,
        "bad_webhooks": seen.bad_webhooks,
        "seconds": took,
    }


def lag_warning(figures: dict[str, Any]) -> str | None:
    """A warning when the send lag is a noticeable share of the accept latency."""
    lag, accept = figures["send_lag_ms"]["p99"], figures["accept_latency_ms"]["p99"]
    if lag is None or accept is None or lag < 1.0 or lag < LAG_SHARE * accept:
        return None
    return (
        f"requests left up to {lag:.1f} ms late (send lag p99) against an accept p99 of "
        f"{accept:.1f} ms: the generator, not only the server, is in these figures; give it "
        "more --senders or cores, or a lower --rate"
    )


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
    deliveries = Deliveries()
    runner = None
    if args.webhook_port is not None:
        receiver = Receiver(deliveries, args.webhook_secret)
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.webhook_host, args.webhook_port).start()
    senders = Senders(plan, args.senders)
    reporter = None if args.quiet else asyncio.create_task(_report(senders, deliveries))
    try:
        took, tally = await senders.results()
        if runner is not None:
            until = time.monotonic() + args.settle
            deliveries.match(tally.pending)
            while tally.pending and time.monotonic() < until:
                await asyncio.sleep(0.1)
                deliveries.match(tally.pending)
    finally:
        if reporter is not None:
            reporter.cancel()
        senders.stop()
        if runner is not None:
            await runner.cleanup()
    if not args.quiet:
        print(file=sys.stderr)
    if args.plot:
        plot(tally, args.plot)
    return result(plan, tally, took, deliveries if runner is not None else None)


async def _report(senders: Senders, deliveries: Deliveries) -> None:
    started = senders.started[0]
    while True:
        await asyncio.sleep(1.0)
        sent, accepted, refused, in_flight = senders.progress()
        print(
            f"\r{max(0.0, time.monotonic() - started):5.0f}s sent {sent} accepted {accepted} "
            f"refused {refused} in flight {in_flight} events {len(deliveries.sent)}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mailpool-loadtest", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add = parser.add_argument
    add("url", help="the intake's base URL")
    add("--rate", type=float, default=100.0, help="requests/s (where a ramp starts)")
    add("--ramp-to", type=float, help="ramp linearly to this many requests/s")
    add("--seconds", type=float, default=10.0, help="how long to send")
    add("--max-in-flight", type=int, default=1000, help="requests under way at most (each sender)")
    add(
        "--senders",
        type=int,
        default=1,
        help="sending processes, each with an equal share of the schedule (more for high "
        "rates or bursts: each holds about 4,000 requests/s on a core of its own)",
    )
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
    if args.senders < 1 or args.senders > 4 * cores():
        raise SystemExit(f"--senders is 1 to {4 * cores()} (four per processor)")
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
    warning = lag_warning(figures)
    if warning:
        warn(warning)
    if args.json:
        with open(args.json, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
