"""Capacity: the bound on messages in flight, taken before a receive, given back on settle."""

from typing import Protocol

from pool.shares import Share, Shares
from pool.streams import Stream


class Room(Protocol):
    """What a receive loop takes room from and gives it back to (a ``Capacity``, or one
    stream's share of ``pool.shares.Shares``)."""

    async def take(self, most: int, least: int = 1) -> int: ...

    def give(self, count: int) -> None: ...


class Capacity(Share):
    """Counts free slots; ``take`` waits its turn for room, ``close`` answers every waiter 0.

    Waiters are served first come, first served, and the slots are handed to the waiter
    as they come back: a poll loop that gives its room back after an empty receive and
    asks again at once queues behind the loops already waiting, so no shard starves.
    It is ``Shares`` with a single stream (the webhooks dispatcher's events queue).
    """

    def __init__(self, limit: int) -> None:
        self._all = Shares(limit, (Stream("all", 1),))
        super().__init__(self._all, "all")
        self.limit = limit

    @property
    def free(self) -> int:
        """Slots not held."""
        return self._all.free

    @property
    def used(self) -> int:
        """Slots held by messages in flight."""
        return self.limit - self.free

    def close(self) -> None:
        """Take no more: waiting and future ``take`` calls return 0."""
        self._all.close()

    async def drained(self) -> None:
        """Wait until every slot is back."""
        await self._all.drained()
