"""ByteBudget: how many bytes of large bodies a sender holds at once.

Concurrency bounds how many messages are in flight; a queue message is at most 1 MiB, but a
body carried through S3 can be ten times that, and a sender holds several copies of it while
it decodes, renders and sends (see docs/api.md, Attachments). The budget makes large
bodies wait for each other instead of all being fetched at once.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ByteBudget:
    """Admits holders while their sizes fit ``limit``; one that alone exceeds it goes when
    nothing else is held (never stuck)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._freed = asyncio.Event()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes for the body of the ``async with``."""
        while self.held and self.held + size > self.limit:
            self._freed.clear()
            await self._freed.wait()
        self.held += size
        try:
            yield
        finally:
            self.held -= size
            self._freed.set()
