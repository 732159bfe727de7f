"""Process plumbing: the event loop, signals, and serving an aiohttp app."""

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from core.health import Health


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    return uvloop.run(main)


def stop_event() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


async def until_stopped(stop: asyncio.Event, health: Health) -> None:
    """Wait for a stop signal or for a watched background task to die, whichever is first."""
    signal_ = asyncio.ensure_future(stop.wait())
    died = asyncio.ensure_future(health.failed())
    try:
        await asyncio.wait([signal_, died], return_when=asyncio.FIRST_COMPLETED)
    finally:
        signal_.cancel()
        died.cancel()


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port (0 picks a free port); returns the runner and the port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)
