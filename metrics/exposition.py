"""The ``/metrics`` endpoint: a process registry and an aiohttp handler that renders it."""

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from core.health import Health


def process_registry() -> CollectorRegistry:
    """A fresh registry with the process, platform and GC collectors on it."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler serving ``registry`` in the Prometheus text format."""

    async def handle(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handle


def metrics_app(registry: CollectorRegistry, health: Health | None = None) -> web.Application:
    """A minimal app serving ``GET /metrics``, ``/healthz`` and ``/readyz`` (503 once a
    background task of the process died) for a worker process."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    watched = health or Health()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if not watched.ok:
            return web.json_response(
                {"status": "failed", "error": {"code": "component_failed"}}, status=503
            )
        return web.json_response({"status": "ready"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
