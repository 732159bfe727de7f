"""Running an async service on an event loop of its own, in a thread, for sync tests."""

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """Enters ``factory()`` on a private loop in a thread; ``stop`` exits it."""

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._factory = factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: Future[None] = Future()

    def start(self) -> T:
        """Start the service; returns what its context manager yields."""
        self._thread.start()
        started: Future[T] = Future()
        asyncio.run_coroutine_threadsafe(self._serve(started), self._loop)
        return started.result(timeout=30)

    async def _serve(self, started: Future[T]) -> None:
        self._stop = asyncio.Event()
        try:
            async with self._factory() as value:
                started.set_result(value)
                await self._stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise
        finally:
            self._done.set_result(None)

    def stop(self) -> None:
        """Exit the service and end the thread."""
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._done.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
