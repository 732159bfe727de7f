"""An SQS endpoint that answers chosen actions with malformed 200s, on demand.

Every other call is forwarded to the real engine behind it. A malformed answer is given
*instead of* the engine's (the engine never sees that call), so a test knows exactly what
was stored.
"""

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

#: Bodies botocore or mailpool cannot map: an array, entries without Id or receipt, not JSON.
MALFORMED = {
    "array": b"[]",
    "entry-without-id": b'{"Successful": [{"MessageId": "m-1"}], "Failed": [{"Code": "X"}]}',
    "not-json": b"<html>oops</html>",
    "message-without-receipt": b'{"Messages": [{"MessageId": "m-1", "Body": "x"}]}',
}
_PASSED_HEADERS = ("Content-Type", "x-amzn-query-error", "x-amzn-RequestId")


class AnswerProxy:
    """Forwards SQS JSON-protocol calls to ``target``; malforms the answers it is told to."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.port = 0
        #: Malformed answers given, by action.
        self.given: dict[str, int] = {}
        self._bodies: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give the pool."""
        return f"http://127.0.0.1:{self.port}"

    def malform(self, action: str, body: bytes) -> None:
        """Answer every ``action`` call (``SendMessageBatch``, …) with 200 and ``body``."""
        self._bodies[action] = body

    def heal(self) -> None:
        """Forward every call again."""
        self._bodies.clear()

    async def __aenter__(self) -> "AnswerProxy":
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        body = await request.read()
        if action in self._bodies:
            self.given[action] = self.given.get(action, 0) + 1
            return web.Response(
                body=self._bodies[action], content_type="application/x-amz-json-1.0"
            )
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}  # fmt: skip
        async with self._http.request(
            request.method, f"{self.target}{request.rel_url}", data=body, headers=headers
        ) as answer:
            payload = await answer.read()
            passed = {k: answer.headers[k] for k in _PASSED_HEADERS if k in answer.headers}
            return web.Response(body=payload, status=answer.status, headers=passed)


@contextlib.asynccontextmanager
async def answer_proxy(target: str) -> AsyncIterator[AnswerProxy]:
    """An ``AnswerProxy`` in front of ``target`` for the block."""
    async with AnswerProxy(target) as proxy:
        yield proxy
