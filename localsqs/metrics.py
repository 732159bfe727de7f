"""The engine's own metrics, at ``GET /_localsqs/metrics`` (an S3 bucket name cannot hold
``_``, so the path is never a bucket's): how much disk its data directory takes, by part,
measured at each scrape."""

import os
import pathlib
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from localsqs.objects import Objects

PATH = "/_localsqs/metrics"


def _size(path: pathlib.Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class DataDirectory(Collector):
    """``localsqs_data_bytes{part}``: the database, its write-ahead log, and the objects."""

    def __init__(self, database: pathlib.Path, objects: Objects) -> None:
        self._database = database
        self._objects = objects

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "localsqs_data_bytes", "Bytes the engine's data directory takes", labels=["part"]
        )
        family.add_metric(["database"], _size(self._database))
        family.add_metric(["wal"], _size(self._database.with_name(self._database.name + "-wal")))
        family.add_metric(["objects"], self._objects.size_bytes())
        yield family
        count = GaugeMetricFamily("localsqs_objects", "S3 objects the engine holds")
        count.add_metric([], sum(1 for e in os.scandir(self._objects.root) if e.is_file()))
        yield count


def routes(app: web.Application, database: pathlib.Path, objects: Objects) -> None:
    """Serve the metrics on ``app`` (before the S3 routes, which would take the path)."""
    registry = CollectorRegistry()
    registry.register(DataDirectory(database, objects))

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(PATH, metrics)
