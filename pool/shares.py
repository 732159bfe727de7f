"""Shares: a sender's bound on messages in flight, shared by streams.

Each stream's receive loops take room from one pool of slots, as with ``Capacity``, with
two rules on top:

- **caps**: a stream never holds more than its cap (a fraction of the limit), so bulk mail
  can never take the room transactional mail needs;
- **weights**: when several streams wait for room, the one holding least for its weight is
  served first (work-conserving: a stream with nothing to do waits for nothing, and its
  share goes to the others).

``view(stream)`` gives a stream's loops the ``take``/``give`` face of a ``Capacity``.
"""

import asyncio
import collections
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pool.streams import Stream


@dataclass(slots=True, eq=False)
class _Waiter:
    most: int
    least: int
    granted: asyncio.Future[int]


class Shares:
    """Slots for messages in flight, shared by ``streams`` by weight, each under its cap."""

    def __init__(self, limit: int, streams: Sequence[Stream]) -> None:
        self.limit = limit
        self.free = limit
        self._caps = {s.name: max(1, math.floor(s.cap * limit)) for s in streams}
        self._weights = {s.name: s.weight for s in streams}
        self.used = {s.name: 0 for s in streams}
        self._waiters: dict[str, collections.deque[_Waiter]] = {
            s.name: collections.deque() for s in streams
        }
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def view(self, stream: str) -> "Share":
        """The take/give face of ``stream``'s share (what a receive loop holds)."""
        return Share(self, stream)

    def _room(self, stream: str) -> int:
        return min(self.free, self._caps[stream] - self.used[stream])

    async def take(self, stream: str, most: int, least: int = 1) -> int:
        """Wait until ``least`` slots are free for ``stream``, then take up to ``most``;
        0 once closed."""
        least = max(1, min(least, most, self._caps[stream]))
        if self._closed:
            return 0
        if not any(self._waiters.values()) and self._room(stream) >= least:
            return self._grant(stream, most)
        waiter = _Waiter(most, least, asyncio.get_running_loop().create_future())
        self._waiters[stream].append(waiter)
        self._serve()
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self.give(stream, waiter.granted.result())
            else:
                self._waiters[stream].remove(waiter)
                self._serve()
            raise

    def give(self, stream: str, count: int) -> None:
        """Return ``count`` slots of ``stream``."""
        if count <= 0:
            return
        self.used[stream] -= count
        self.free += count
        if self.used[stream] < 0 or self.free > self.limit:
            raise RuntimeError("capacity given back more than was taken")
        self._serve()
        if self.free == self.limit:
            self._idle.set()

    def close(self) -> None:
        """Take no more: waiting and future ``take`` calls return 0."""
        self._closed = True
        for waiters in self._waiters.values():
            while waiters:
                waiter = waiters.popleft()
                if not waiter.granted.done():
                    waiter.granted.set_result(0)

    async def drained(self) -> None:
        """Wait until every slot is back."""
        await self._idle.wait()

    def _grant(self, stream: str, most: int) -> int:
        taken = min(most, self._room(stream))
        self.free -= taken
        self.used[stream] += taken
        self._idle.clear()
        return taken

    def _serve(self) -> None:
        """Grant waiting heads while any can be served: the stream holding least for its
        weight first."""
        while not self._closed:
            ready = [
                stream
                for stream, waiters in self._waiters.items()
                if waiters and self._room(stream) >= waiters[0].least
            ]
            if not ready:
                return
            stream = min(ready, key=lambda s: (self.used[s] + 1) / self._weights[s])
            waiter = self._waiters[stream].popleft()
            if not waiter.granted.done():
                waiter.granted.set_result(self._grant(stream, waiter.most))


class Share:
    """One stream's face of ``Shares``: what ``Capacity`` offers a receive loop."""

    def __init__(self, shares: Shares, stream: str) -> None:
        self._shares = shares
        self.stream = stream

    async def take(self, most: int, least: int = 1) -> int:
        return await self._shares.take(self.stream, most, least)

    def give(self, count: int) -> None:
        self._shares.give(self.stream, count)
