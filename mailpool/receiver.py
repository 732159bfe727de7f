"""A local webhook receiver (``mailpool dev``): verifies each signature and appends the
events, one JSON line each, to a file (``var/events.jsonl``)."""

import pathlib
import types

import orjson
from aiohttp import web

from core.runtime import serve
from webhooks import signing


class Receiver:
    """Accepts Standard Webhooks POSTs signed with ``key``; 401 for any other."""

    def __init__(self, key: bytes, path: pathlib.Path, port: int = 0) -> None:
        self.key = key
        self.path = path
        self.port = port
        self.count = 0
        self._seen: set[str] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/webhooks"

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            webhook_id = signing.verify(self.key, request.headers, body)
        except signing.SignatureError:
            return web.json_response({"error": "bad signature"}, status=401)
        if webhook_id not in self._seen:  # a redelivered event: acknowledged, not kept twice
            self._seen.add(webhook_id)
            line = orjson.dumps({"webhook_id": webhook_id, "event": orjson.loads(body)})
            with self.path.open("ab") as out:
                out.write(line + b"\n")
            self.count += 1
        return web.Response(status=204)

    async def __aenter__(self) -> "Receiver":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        app = web.Application()
        app.router.add_post("/webhooks", self._receive)
        self._runner, self.port = await serve(app, "127.0.0.1", self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
