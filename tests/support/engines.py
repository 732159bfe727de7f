"""Queue engines for tests: localsqs on a thread of its own, like moto's ThreadedMotoServer."""

import asyncio
import pathlib
import threading
from concurrent.futures import Future

from localsqs.server import LocalSqs, LocalSqsConfig


class ThreadedLocalSqs:
    """Runs localsqs on its own event loop in a thread, for synchronous fixtures."""

    def __init__(self, data_dir: pathlib.Path, throttle: float = 0.0) -> None:
        self.config = LocalSqsConfig(port=0, data_dir=data_dir, durability="os", throttle=throttle)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._done: Future[None] = Future()

    def start(self) -> str:
        """Start serving; returns the endpoint URL."""
        self._thread.start()
        started: Future[str] = Future()
        asyncio.run_coroutine_threadsafe(self._serve(started), self._loop)
        self.url = started.result(timeout=30)
        return self.url

    async def _serve(self, started: Future[str]) -> None:
        self._stop = asyncio.Event()
        try:
            async with LocalSqs(self.config) as server:
                started.set_result(server.url)
                await self._stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise
        finally:
            self._done.set_result(None)

    def stop(self) -> None:
        """Stop serving and close the database."""
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._done.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
