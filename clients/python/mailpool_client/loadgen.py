"""The sending half of ``mailpool-loadtest``: what to send (``Plan``), and the open-loop
loop that sends it, in this process or in processes of its own (``send_apart``).

Each request is prepared (its body encoded, its headers built) *before* its scheduled time,
while the loop would otherwise wait, and goes out as bytes with fixed headers, so the time
between the schedule and the wire is the generator's least. That time, the **send lag**, is
measured for every request and reported beside the latencies: where it is a noticeable share
of them, the generator and not the server is the limit. The webhook receiver that times
delivery runs in the parent process, so verifying events never delays a send.
"""

import asyncio
import base64
import json
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from hdrh.histogram import HdrHistogram

from mailpool_client.lean_http import LeanClient

#: A request goes out up to this much before its time rather than a timer's tick after it.
EARLY_S = 0.001
#: Latencies are kept in microseconds, 1 µs to 1 hour, 3 significant digits.
LOWEST, _HIGHEST, _DIGITS = 1, 3_600_000_000, 3
#: Progress counters each sender process keeps in shared memory: sent, accepted, refused,
#: in flight.
COUNTERS = 4


def histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST, _HIGHEST, _DIGITS)


def micros(seconds: float) -> int:
    """A duration as a histogram records it (at least 1 µs)."""
    return max(LOWEST, int(seconds * 1e6))


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

    def request(self, n: int) -> tuple[str, bytes]:
        """The n-th request, ready for the wire: its path and its JSON body."""
        if self.batch > 1:
            docs = [self.email(n * self.batch + i) for i in range(self.batch)]
            return "/v1/emails/batch", json.dumps(docs).encode()
        return "/v1/emails", json.dumps(self.email(n)).encode()


@dataclass
class Tally:
    """What one sending loop saw, as it happens."""

    started_mono: float = 0.0
    started_wall: float = 0.0
    scheduled: int = 0
    sent: int = 0
    accepted: int = 0
    in_flight: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    accept: HdrHistogram = field(default_factory=histogram)
    #: How late each request went out against its schedule.
    lag: HdrHistogram = field(default_factory=histogram)
    #: Accepted email id -> its scheduled wall-clock time.
    pending: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, float]] = field(default_factory=list)

    def absorb(self, part: "Tally") -> None:
        """Add another loop's figures (a sender process's) to these."""
        self.scheduled += part.scheduled
        self.sent += part.sent
        self.accepted += part.accepted
        self.refusals.update(part.refusals)
        self.accept.add(part.accept)
        self.lag.add(part.lag)
        self.pending.update(part.pending)
        self.timeline.extend(part.timeline)

    def shipped(self) -> dict[str, Any]:
        """As a sender process hands it to its parent (histograms encoded)."""
        return {
            "scheduled": self.scheduled,
            "sent": self.sent,
            "accepted": self.accepted,
            "refusals": dict(self.refusals),
            "accept": self.accept.encode(),
            "lag": self.lag.encode(),
            "pending": self.pending,
            "timeline": self.timeline,
        }

    @classmethod
    def received(cls, doc: dict[str, Any]) -> "Tally":
        tally = cls(scheduled=doc["scheduled"], sent=doc["sent"], accepted=doc["accepted"])
        tally.refusals.update(doc["refusals"])
        tally.accept.add(HdrHistogram.decode(doc["accept"]))
        tally.lag.add(HdrHistogram.decode(doc["lag"]))
        tally.pending = doc["pending"]
        tally.timeline = doc["timeline"]
        return tally


def _record_answer(tally: Tally, plan: Plan, status: int, doc: Any, due_wall: float) -> None:
    if plan.batch > 1 and isinstance(doc, dict) and "results" in doc:
        for entry in doc["results"]:
            if "id" in entry:
                tally.accepted += 1
                tally.pending[entry["id"]] = due_wall
            else:
                error = entry.get("error", {})
                tally.refusals[f"{error.get('status', status)} {error.get('code', '?')}"] += 1
        return
    if status == 202 and isinstance(doc, dict) and "id" in doc:
        tally.accepted += 1
        tally.pending[doc["id"]] = due_wall
    else:
        code = doc.get("error", {}).get("code", "?") if isinstance(doc, dict) else "?"
        tally.refusals[f"{status} {code}"] += plan.batch


async def _request(
    client: LeanClient, plan: Plan, tally: Tally, request: bytes, due_mono: float
) -> None:
    due_wall = tally.started_wall + (due_mono - tally.started_mono)
    tally.sent += 1
    sent_at = time.monotonic()
    try:
        answer = await client.send(request)
    except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
        status, raw = 0, b""
        error: str | None = type(exc).__name__
    else:
        status, raw, sent_at, error = answer.status, answer.body, answer.sent_at, None
    # Late (the server held the slots, or this process was busy): timed from the schedule.
    # Early by up to EARLY_S (timer resolution): timed from when it really went.
    took = time.monotonic() - min(due_mono, sent_at)
    tally.lag.record_value(micros(sent_at - due_mono))
    tally.accept.record_value(micros(took))
    tally.timeline.append((due_mono - tally.started_mono, took))
    if error is not None:
        tally.refusals[f"0 {error}"] += 1
        return
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    _record_answer(tally, plan, status, doc, due_wall)


async def drive(
    plan: Plan,
    tally: Tally,
    *,
    part: tuple[int, int] = (0, 1),
    started: tuple[float, float] | None = None,
    counters: Any = None,
) -> float:
    """Send this loop's share of the schedule (every ``part[1]``-th request from the
    ``part[0]``-th) on time; the seconds until its last answer. ``started`` is the run's
    (monotonic, wall) start, shared by every sender process; ``counters`` a shared array
    of this loop's progress."""
    index, count = part
    offsets = plan.schedule()[index::count]
    tally.scheduled = len(offsets)
    slots = asyncio.Semaphore(plan.max_in_flight)
    headers = {"Authorization": f"Bearer {plan.api_key}"} if plan.api_key else {}
    client = LeanClient(plan.url, headers)
    tasks: set[asyncio.Task[None]] = set()
    try:
        # The connections a burst needs, opened before the clock starts.
        await client.warm(min(plan.max_in_flight, max(2 * plan.burst, 16)))
        tally.started_mono, tally.started_wall = started or (time.monotonic(), time.time())
        reporter = asyncio.create_task(_share(tally, counters)) if counters is not None else None

        async def one(request: bytes, due: float) -> None:
            async with slots:  # a request that waits for a slot waits on its own clock
                tally.in_flight += 1
                try:
                    await _request(client, plan, tally, request, due)
                finally:
                    tally.in_flight -= 1

        for position, offset in enumerate(offsets):
            # Prepared while the loop would wait anyway: only sending is on the clock.
            path, body = plan.request(index + position * count)
            request = client.build("POST", path, body, "application/json")
            due = tally.started_mono + offset
            wait = due - time.monotonic() - EARLY_S
            if wait > 0:  # timers fire up to a millisecond late (uvloop's resolution)
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(request, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        took = time.monotonic() - tally.started_mono
        if reporter is not None:
            reporter.cancel()
            _publish(tally, counters)
    finally:
        await client.aclose()
    return took


async def _share(tally: Tally, counters: Any) -> None:
    while True:
        _publish(tally, counters)
        await asyncio.sleep(0.5)


def _publish(tally: Tally, counters: Any) -> None:
    counters[:] = [tally.sent, tally.accepted, sum(tally.refusals.values()), tally.in_flight]


def _child(
    plan: Plan,
    part: tuple[int, int],
    started: tuple[float, float],
    counters: Any,
    answer: Connection,
) -> None:
    """A sender process: its share of the schedule, its tally sent back when done."""
    tally = Tally()
    try:
        import uvloop

        took = uvloop.run(drive(plan, tally, part=part, started=started, counters=counters))
    except ImportError:
        took = asyncio.run(drive(plan, tally, part=part, started=started, counters=counters))
    answer.send((took, tally.shipped()))
    answer.close()


class Senders:
    """``count`` sender processes, each with every ``count``-th request of the schedule,
    on one shared clock; started ahead of the run, so their start-up is not timed."""

    #: Seconds from the processes' start to the run's: their imports and loops come first.
    LEAD_S = 1.5

    def __init__(self, plan: Plan, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self.counters = [context.RawArray("q", COUNTERS) for _ in range(count)]
        self.started = (time.monotonic() + self.LEAD_S, time.time() + self.LEAD_S)
        self._pipes: list[Connection] = []
        self._processes = []
        for index in range(count):
            mine, theirs = context.Pipe(duplex=False)
            process = context.Process(
                target=_child,
                args=(plan, (index, count), self.started, self.counters[index], theirs),
                name=f"mailpool-loadtest-sender-{index}",
                daemon=True,
            )
            process.start()
            theirs.close()
            self._pipes.append(mine)
            self._processes.append(process)

    def progress(self) -> tuple[int, int, int, int]:
        """Sent, accepted, refused and in flight, over every sender process."""
        totals = [sum(c[i] for c in self.counters) for i in range(COUNTERS)]
        return totals[0], totals[1], totals[2], totals[3]

    async def results(self) -> tuple[float, Tally]:
        """Wait for every sender process; the run's length and their tallies together."""
        tally = Tally(started_mono=self.started[0], started_wall=self.started[1])
        longest = 0.0
        for pipe, process in zip(self._pipes, self._processes, strict=True):
            try:
                took, doc = await asyncio.to_thread(pipe.recv)
            except EOFError:
                await asyncio.to_thread(process.join)
                raise SystemExit(
                    f"{process.name} died (exit {process.exitcode}); nothing was measured"
                ) from None
            await asyncio.to_thread(process.join)
            longest = max(longest, took)
            tally.absorb(Tally.received(doc))
        return longest, tally

    def stop(self) -> None:
        """End the sender processes still running (the run was interrupted)."""
        for process in self._processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


def cores() -> int:
    """Processors this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def warn(message: str) -> None:
    print(f"mailpool-loadtest: {message}", file=sys.stderr)
