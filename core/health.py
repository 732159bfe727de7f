"""Health: a process's background tasks watched; the first one to die makes it fatal.

A task that dies is logged at ERROR with its traceback (never its message, see
``core.logs``), the process turns unready at once (``/readyz`` answers 503), and its
``__main__`` exits non-zero, so that a supervisor restarts it: nobody restarts a process
that is silently half alive.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _never() -> bool:
    return False


class Health:
    """Whether every watched background task of this process is still alive."""

    def __init__(self) -> None:
        #: The component that failed first; None while healthy.
        self.failure: str | None = None
        self._failed = asyncio.Event()

    @property
    def ok(self) -> bool:
        """True until a watched task has died."""
        return self.failure is None

    def watch(
        self,
        task: asyncio.Task[Any],
        component: str,
        *,
        may_end: Callable[[], bool] = _never,
    ) -> None:
        """Fail when ``task`` raises, or ends or is cancelled while ``may_end()`` is False."""

        def done(finished: asyncio.Task[Any]) -> None:
            if finished.cancelled():
                if not may_end():
                    self.fail(component, None, "cancelled")
                return
            error = finished.exception()
            if error is not None:
                self.fail(component, error)
            elif not may_end():
                self.fail(component, None, "returned early")

        task.add_done_callback(done)

    def fail(self, component: str, error: BaseException | None, how: str = "raised") -> None:
        """Record that ``component`` died: log it at ERROR and turn the process fatal."""
        if self.failure is None:
            self.failure = component
        log.error(
            "background task died; the process is unhealthy and exits",
            extra={
                "component": component,
                "error": type(error).__name__ if error is not None else how,
            },
            exc_info=error,
        )
        self._failed.set()

    async def failed(self) -> str:
        """Wait until a watched task dies; the component that did."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure
