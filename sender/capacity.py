"""Capacity: the bound on messages in flight, taken before a receive, given back on settle."""

import asyncio


class Capacity:
    """Counts free slots; ``take`` waits for room, ``close`` wakes every waiter with 0."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free = limit
        self._room = asyncio.Event()
        self._room.set()
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
        while not self._closed and self.free < least:
            self._room.clear()
            await self._room.wait()
        if self._closed:
            return 0
        taken = min(most, self.free)
        self.free -= taken
        self._idle.clear()
        return taken

    def give(self, count: int) -> None:
        """Return ``count`` slots."""
        if count <= 0:
            return
        self.free += count
        if self.free > self.limit:
            raise RuntimeError("capacity given back more than was taken")
        self._room.set()
        if self.free == self.limit:
            self._idle.set()

    def close(self) -> None:
        """Take no more: waiting and future ``take`` calls return 0."""
        self._closed = True
        self._room.set()

    async def drained(self) -> None:
        """Wait until every slot is back."""
        await self._idle.wait()
