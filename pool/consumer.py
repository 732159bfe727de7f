"""The consuming half of the pool: one receive loop over one queue, shared by every process
that takes messages (the sender's shards, the webhooks dispatcher's events queue).

capacity → receive → hand over → again, until stopped: room for up to ten messages is taken
*before* each receive (so no message waits in memory while its visibility runs out), and
what did not arrive is given back at once; the handler then owns the slots of the messages
it got and gives each back when that message is settled. A receive that fails gives its
room back, is reported, and the loop pauses with backoff (a stop ends the pause at once).
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aws.errors import AwsError
from core.backoff import backoff
from pool.capacity import Room
from pool.messages import Received
from pool.pool import QueuePool

#: Receives what arrived (and when the receive started); owns the messages' slots.
Handler = Callable[[list[Received], float], Awaitable[None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Receiving:
    """How a loop receives: long-poll time, visibility, the room it waits for, its pauses."""

    wait_s: int
    visibility_s: int | None = None
    #: Slots to wait for before receiving: under load, receives stay full.
    at_least: int = 1
    #: Backoff after failed receives: first pause and longest pause, in seconds.
    pause_s: float = 0.25
    max_pause_s: float = 30.0


async def pause(stopped: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stopped`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopped.wait()


async def consume(
    pool: QueuePool,
    queue: int,
    capacity: Room,
    handle: Handler,
    receiving: Receiving,
    *,
    stopped: asyncio.Event,
    ready: Callable[[], Awaitable[None]] | None = None,
    failed: Callable[[AwsError], None] | None = None,
) -> None:
    """Receive from ``queue`` and hand what comes to ``handle`` until ``stopped`` (or the
    capacity is closed). ``ready`` is awaited before each receive (a loop that must not take
    new work yet waits there); ``failed`` hears of every receive that failed."""
    failures = 0
    while not stopped.is_set():
        if ready is not None:
            await ready()
        room = await capacity.take(10, receiving.at_least)
        if room == 0:
            return
        started = time.monotonic()
        try:
            messages = await pool.receive(
                queue,
                max_messages=room,
                wait_s=receiving.wait_s,
                visibility_s=receiving.visibility_s,
            )
        except AwsError as exc:
            capacity.give(room)
            failures += 1
            if failed is not None:
                failed(exc)
            await pause(stopped, backoff(failures - 1, receiving.pause_s, receiving.max_pause_s))
            continue
        except BaseException:
            capacity.give(room)
            raise
        failures = 0
        capacity.give(room - len(messages))
        if messages:
            await handle(messages, started)
