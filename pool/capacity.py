"""Capacity: the bound on messages in flight, taken before a receive, given back on settle."""

import asyncio
import collections
from dataclasses import dataclass
from typing import Protocol


class Room(Protocol):
    """What a receive loop takes room from and gives it back to (a ``Capacity``, or one
    stream's share of ``pool.shares.Shares``)."""

    async def take(self, most: int, least: int = 1) -> int: ...

    def give(self, count: int) -> None: ...


@dataclass(slots=True, eq=False)
class _Waiter:
    most: int
    least: int
    granted: asyncio.Future[int]


class Capacity:
    """Counts free slots; ``take`` waits its turn for room, ``close`` answers every waiter 0.

    Waiters are served first come, first served, and the slots are handed to the waiter
    as they come back: a poll loop that gives its room back after an empty receive and
    asks again at once queues behind the loops already waiting, so no shard starves.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    @property
    def used(self) -> int:
        """Slots held by messages in flight."""
        return self.limit - self.free

    async def take(self, most: int, least: int = 1) -> int:
        """Wait until ``least`` slots are free, then take up to ``most``; 0 once closed.

        Waiting for several free slots keeps receives full under load (one call for ten
        messages instead of ten calls for one) while an idle sender still takes at once.
        """
        least = max(1, min(least, most, self.limit))
        if self._closed:
            return 0
        if not self._waiters and self.free >= least:
            return self._grant(most)
        waiter = _Waiter(most, least, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await waiter.granted
        except asyncio.CancelledError:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self.give(waiter.granted.result())  # granted, then cancelled: hand it on
            else:
                self._waiters.remove(waiter)
                self._serve()  # the head may have been blocking those behind it
            raise

    def give(self, count: int) -> None:
        """Return ``count`` slots."""
        if count <= 0:
            return
        self.free += count
        if self.free > self.limit:
            raise RuntimeError("capacity given back more than was taken")
        self._serve()
        if self.free == self.limit:
            self._idle.set()

    def close(self) -> None:
        """Take no more: waiting and future ``take`` calls return 0."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.granted.done():
                waiter.granted.set_result(0)

    async def drained(self) -> None:
        """Wait until every slot is back."""
        await self._idle.wait()

    def _grant(self, most: int) -> int:
        taken = min(most, self.free)
        self.free -= taken
        self._idle.clear()
        return taken

    def _serve(self) -> None:
        while self._waiters and not self._closed and self.free >= self._waiters[0].least:
            waiter = self._waiters.popleft()
            if not waiter.granted.done():
                waiter.granted.set_result(self._grant(waiter.most))
