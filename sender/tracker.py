"""The messages a sender holds, and the heartbeat that keeps them invisible meanwhile."""

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from aws.errors import AwsError
from pool.messages import Received
from pool.pool import QueuePool

log = logging.getLogger(__name__)

#: Delivered messages remembered by SQS message ID, to recognise one received again.
RECENT_DELIVERED = 50_000


@dataclass(slots=True, eq=False)
class Held:
    """One received message: when its visibility runs out, and whether it was delivered."""

    message: Received
    expires: float
    delivered: bool = False


class Tracker:
    """Tracks held messages and extends their visibility before it runs out."""

    def __init__(self, pool: QueuePool, visibility_s: int) -> None:
        self._pool = pool
        self._visibility_s = visibility_s
        self._held: dict[str, Held] = {}
        self._by_id: dict[str, Held] = {}
        #: SQS message IDs delivered and settled lately (bounded, oldest forgotten first).
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._delivered = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def working(self) -> int:
        """Held messages not yet delivered (a delivered one only waits for its delete)."""
        return len(self._held) - self._delivered

    def hold(self, messages: list[Received], received_at: float) -> None:
        """Start tracking ``messages`` received at ``received_at`` (monotonic)."""
        expires = received_at + self._visibility_s
        for message in messages:
            held = Held(message, expires)
            self._held[message.receipt] = held
            self._by_id[message.message_id] = held

    def mark_delivered(self, message: Received) -> None:
        """The provider took ``message``: on shutdown it is deleted, not released."""
        held = self._held.get(message.receipt)
        if held is not None and not held.delivered:
            held.delivered = True
            self._delivered += 1

    def drop(self, message: Received) -> None:
        """Stop tracking ``message`` (it was settled)."""
        held = self._held.pop(message.receipt, None)
        if held is not None and self._by_id.get(message.message_id) is held:
            del self._by_id[message.message_id]
        if held is not None and held.delivered:
            self._delivered -= 1
            self._recent[message.message_id] = None
            if len(self._recent) > RECENT_DELIVERED:
                self._recent.popitem(last=False)

    def again(self, message: Received) -> str | None:
        """Whether ``message`` is one this sender already holds or delivered, received again
        under a new receipt because its visibility ran out (an outage longer than the
        visibility timeout made the extensions fail): ``delivered`` (delete this copy),
        ``held`` (still being sent: leave this copy alone) or None (new)."""
        if message.message_id in self._recent:
            return "delivered"
        held = self._by_id.get(message.message_id)
        if held is None or held.message.receipt == message.receipt:
            return None
        return "delivered" if held.delivered else "held"

    def remaining(self) -> list[Held]:
        """Every message still held."""
        return list(self._held.values())

    async def run(self) -> None:
        """Extend each held message's visibility when less than half of it is left."""
        interval = max(0.25, min(5.0, self._visibility_s / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            due = [h for h in self._held.values() if h.expires - now < self._visibility_s / 2]
            if due:
                await asyncio.gather(*(self._extend(h) for h in due))

    async def _extend(self, held: Held) -> None:
        started = time.monotonic()  # SQS counts the new timeout from the call
        try:
            await self._pool.set_visibility(held.message, self._visibility_s)
        except AwsError as exc:
            log.warning(
                "visibility extension failed",
                extra={
                    "sqs_id": held.message.message_id,
                    "shard": held.message.shard,
                    "error": type(exc).__name__,
                },
            )
            return
        held.expires = started + self._visibility_s
