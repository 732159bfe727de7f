"""What every long-running mailpool process is: its parts opened in order and closed in
reverse, and one main task whose death, like that of any task its health watches, is fatal.

``BackgroundService`` is the base of the sender's and the webhooks dispatcher's services:
a subclass opens its parts in ``open`` (on the exit stack it is given) and ends by
``start``-ing its main task; closing calls ``stop`` (idempotent), waits for that task, and
closes the parts in reverse. ``core.runtime.run_service`` runs any such service until a
signal or a death, and turns the outcome into the process's exit code.
"""

import asyncio
import contextlib
import types
from collections.abc import Callable, Coroutine
from typing import Any, Self

from core.health import Health


class BackgroundService:
    """Opens its parts, runs one watched main task, and closes it all in order."""

    def __init__(self, health: Health) -> None:
        #: Turns fatal when a background task (the main task, a pool's flushers) dies.
        self.health = health
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        """Open the parts onto ``stack`` and ``start`` the main task."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the main task to finish (idempotent)."""
        raise NotImplementedError

    def start(
        self, main: Coroutine[Any, Any, None], name: str, stopping: Callable[[], bool]
    ) -> None:
        """Run ``main`` as the service's task; its end is a death unless ``stopping()``."""
        self._task = asyncio.create_task(main, name=name)
        self.health.watch(self._task, name, may_end=stopping)

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            await self.open(stack)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        try:
            self.stop()
            if self._task is not None:
                # A task that died was logged (with its traceback) by ``health``.
                await asyncio.gather(self._task, return_exceptions=True)
        finally:
            await self._stack.aclose()
