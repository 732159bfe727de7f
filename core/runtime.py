"""Process plumbing: the event loop, signals, and serving an aiohttp app."""

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web

from core.health import Health
from core.settings import SettingError


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(main)
    return uvloop.run(main)


#: Allocations between two young-generation collections (CPython's default: 700). A
#: process allocates a few hundred short-lived objects per email (dicts, coroutines,
#: futures), so the default collects every few emails, each time walking every object the
#: service holds; measured on the sender, 18 % of its CPU per email, on keyed intake 31 %.
GC_YOUNG_THRESHOLD = 20_000


def settle_gc() -> None:
    """Once a service is up: move everything it holds so far (modules, botocore's models,
    the app) out of the collector's sight (``gc.freeze``), and collect the young
    generation less often. Garbage cycles are still collected, in larger batches."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def stop_event() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, event.set)
    return event


async def run_service(
    service: AbstractAsyncContextManager[Any], health: Health, started: Callable[[], str]
) -> int:
    """Run ``service`` until SIGINT or SIGTERM, or until a task ``health`` watches dies;
    print ``started()`` once it is up. The process's exit code: 0 after a requested stop, 1
    after a death (a supervisor restarts the process)."""
    stop = stop_event()
    async with service:
        settle_gc()
        print(started(), flush=True)
        await until_stopped(stop, health)
    return exit_code(health)


def exit_code(health: Health) -> int:
    """0 after a requested stop; 1 when a background task died (a supervisor restarts it)."""
    if health.ok:
        return 0
    print(f"mailpool: {health.failure} died; exiting so that it is restarted", file=sys.stderr)
    return 1


async def until_stopped(stop: asyncio.Event, health: Health) -> None:
    """Wait for a stop signal or for a watched background task to die, whichever is first."""
    signal_ = asyncio.ensure_future(stop.wait())
    died = asyncio.ensure_future(health.failed())
    try:
        await asyncio.wait([signal_, died], return_when=asyncio.FIRST_COMPLETED)
    finally:
        signal_.cancel()
        died.cancel()


def cannot_listen(host: str, port: int, setting: str, exc: OSError) -> SettingError:
    """The one line a process that cannot bind its port exits with: what, and what moves it."""
    reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    return SettingError(f"cannot listen on {host}:{port} ({reason}): {setting} picks another")


async def start_site(runner: web.AppRunner, host: str, port: int, setting: str) -> int:
    """Listen on host:port (0 picks a free port) with ``runner`` (set up); the port bound.
    A port taken, a host not on this machine: ``SettingError`` naming ``setting``."""
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise cannot_listen(host, port, setting, exc) from None
    return int(runner.addresses[0][1]) if runner.addresses else port


async def serve(
    app: web.Application,
    host: str,
    port: int,
    setting: str = "another port",
    idle_timeout_s: float = 75.0,
) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port (0 picks a free port); returns the runner and the port.
    ``setting`` names the variable or flag that moves the port, for the error if it is taken.
    A connection is closed after ``idle_timeout_s`` without a whole request's headers (at
    its start, and between requests)."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=10.0,
        keepalive_timeout=idle_timeout_s,
    )
    await runner.setup()
    try:
        bound = await start_site(runner, host, port, setting)
    except BaseException:
        await runner.cleanup()
        raise
    return runner, bound
