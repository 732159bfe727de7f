"""A loopback webhook receiver that verifies every request with the Standard Webhooks
reference library and answers as scripted (status, delay)."""

import asyncio
import time
import types
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    """One verified request."""

    webhook_id: str
    event: dict[str, Any]
    at: float


@dataclass
class WebhookSink:
    """POST /hook: verified with ``secret``; ``status`` and ``delay_s`` decide the answer."""

    secret: str
    status: int = 204
    delay_s: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    #: Every request: (status answered, webhook-id).
    requests: list[tuple[int, str]] = field(default_factory=list)
    unverified: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        """Ids of the events delivered (answered 2xx), in order, repeats included."""
        return [d.webhook_id for d in self.deliveries]

    def events(self, email_id: str | None = None) -> list[dict[str, Any]]:
        """Distinct events delivered (by webhook id), optionally of one email."""
        seen: dict[str, dict[str, Any]] = {}
        for d in self.deliveries:
            if email_id is None or d.event["data"]["email_id"] == email_id:
                seen.setdefault(d.webhook_id, d.event)
        return list(seen.values())

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.unverified += 1
            return web.Response(status=401)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.status
        self.requests.append((status, request.headers["webhook-id"]))
        if 200 <= status < 300:
            self.deliveries.append(Delivery(request.headers["webhook-id"], event, time.time()))
        return web.Response(status=status)

    async def __aenter__(self) -> "WebhookSink":
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
