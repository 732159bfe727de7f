"""The intake HTTP API: thin handlers over the Acceptor, errors as JSON."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from aws.errors import AwsError
from core.network import host_guard, is_loopback, url_host
from core.sealing import Keyring
from intake import state_api
from intake.accept import Acceptor
from intake.appkeys import (
    ACCEPTOR,
    AUTH,
    CONFIG,
    KEYRING,
    METRICS,
    POOL,
    PUBLISHER,
    QUOTAS,
    SIGNER,
    STATE,
    UNSUBSCRIBES,
)
from intake.auth import Authenticator
from intake.config import IntakeConfig
from intake.errors import ApiError, error_middleware, json_response
from intake.ids import valid_key
from intake.openapi import openapi_document
from intake.quota import Grant, Quotas
from metrics.exposition import metrics_handler
from metrics.intake import IntakeMetrics
from pool.pool import QueuePool
from pool.streams import check_names
from state.publisher import Publisher
from state.store import State
from state.tokens import Signer

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


def _json_media_type(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type: what a browser page on another site cannot
    send without asking first (a CORS preflight, which intake never grants)."""
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def _read_json(request: web.Request) -> Any:
    try:
        if not _json_media_type(request.content_type):
            raise ApiError(
                415,
                "unsupported_media_type",
                "the request body must be JSON, sent as Content-Type: application/json",
                "Content-Type",
            )
        try:
            async with asyncio.timeout(request.app[CONFIG].read_timeout_s):
                raw = await request.read()
        except TimeoutError:
            raise ApiError(
                408, "request_timeout", "the request body did not arrive in time"
            ) from None
        if not raw:
            raise ApiError(400, "invalid_json", "the request body is empty")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    except ApiError as exc:
        request.app[METRICS].refused(exc.code)
        raise


def _stream_quotas(config: IntakeConfig, pool: QueuePool) -> dict[str, Quotas]:
    """Each stream's quota per key (MAILPOOL_STREAM_RATE_LIMITS), its names checked."""
    limits = config.stream_rate_limits
    check_names(
        (name for name, _ in limits), pool.config.all_streams, "MAILPOOL_STREAM_RATE_LIMITS"
    )
    return {name: Quotas(rate) for name, rate in limits}


def _rate_limited(grant: Grant, field: str | None = None) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        "this API key's quota of emails per second is spent; retry after Retry-After",
        field,
        retry_after=grant.retry_after_s,
        headers=grant.headers,
    )


def _idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not valid_key(key):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            "must be 1-255 printable ASCII characters without spaces",
            IDEMPOTENCY_HEADER,
        )
    return key


def _client(request: web.Request) -> str:
    return request.app[AUTH].identify(request.headers.get("Authorization"))


async def post_email(request: web.Request) -> web.Response:
    """POST /v1/emails: one email; 202 {"id"} once SQS has it."""
    client = _client(request)
    key = _idempotency_key(request)
    grant = request.app[QUOTAS].take(client, 1)
    if not grant.admitted:
        request.app[METRICS].refused("rate_limited")
        raise _rate_limited(grant)
    doc = await _read_json(request)
    try:
        message_id = await request.app[ACCEPTOR].accept(doc, key, client)
    except ApiError as exc:
        exc.headers.update(grant.headers)
        raise
    return json_response({"id": message_id}, 202, grant.headers)


async def post_batch(request: web.Request) -> web.Response:
    """POST /v1/emails/batch: many emails, each accepted or refused on its own."""
    client = _client(request)
    key = _idempotency_key(request)
    docs = await _read_json(request)
    if not isinstance(docs, list):
        raise ApiError(422, "invalid_type", "the batch must be a JSON array of emails", None)
    if not docs:
        raise ApiError(422, "empty_batch", "the batch holds no emails", None)
    limit = request.app[CONFIG].max_batch
    if len(docs) > limit:
        raise ApiError(413, "batch_too_large", f"a batch holds at most {limit} emails", None)
    # The quota admits a prefix of the batch: the rest is refused, so no group reorders.
    grant = request.app[QUOTAS].take(client, len(docs))
    results = await request.app[ACCEPTOR].accept_many(docs[: grant.admitted], key, client)
    for index in range(grant.admitted, len(docs)):
        request.app[METRICS].refused("rate_limited")
        results.append(_rate_limited(grant, f"[{index}]"))
    return _batch_response(results, grant.headers)


def _batch_response(results: list[str | ApiError], headers: dict[str, str]) -> web.Response:
    """202 if any email was accepted; else the most telling failing status (503, 429, 422)."""
    items: list[dict[str, Any]] = []
    accepted = 0
    statuses: dict[int, int] = {}  # failing status -> its Retry-After
    for result in results:
        if isinstance(result, str):
            items.append({"id": result})
            accepted += 1
        else:
            items.append({"error": {**result.body(), "status": result.status}})
            if result.retry_after is not None:
                statuses[result.status] = result.retry_after
    if accepted:
        return json_response({"results": items}, 202, headers)
    # Nothing was accepted: answer with a failing status so that plain clients notice.
    for status in (503, 429):
        if status in statuses:
            retry = {**headers, "Retry-After": str(statuses[status])}
            return json_response({"results": items}, status, retry)
    return json_response({"results": items}, 422, headers)


def _scoped(
    handler: Callable[[web.Request, str], Awaitable[web.Response]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler of the authenticated API, given the caller's scope (its key's name)."""

    async def scoped(request: web.Request) -> web.Response:
        return await handler(request, _client(request))

    return scoped


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process is alive."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: every queue of the pool answers and no background task has died."""
    pool = request.app[POOL]
    if not pool.health.ok:
        return json_response({"status": "failed", "error": {"code": "component_failed"}}, 503)
    try:
        await pool.check()
    except AwsError as exc:
        log.warning("not ready", extra={"error": type(exc).__name__})
        return json_response(
            {"status": "unavailable", "error": {"code": "queues_unreachable"}}, 503
        )
    return json_response({"status": "ready", "shards": request.app[POOL].shards})


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json: the API's OpenAPI 3 document."""
    return json_response(
        openapi_document(request.app[CONFIG], request.app[POOL].config, request.app[AUTH].enabled)
    )


def create_app(
    config: IntakeConfig,
    pool: QueuePool,
    metrics: IntakeMetrics,
    registry: CollectorRegistry,
    auth: Authenticator | None = None,
    keyring: Keyring | None = None,
    quotas: Quotas | None = None,
    state: State | None = None,
) -> web.Application:
    """The intake application; it opens ``pool`` on startup and closes it on cleanup.

    ``auth`` guards ``/v1/*`` (health, readiness, metrics and the OpenAPI document stay
    open, for probes and scrapers); None leaves the API open.
    """
    middlewares = [error_middleware(metrics)]
    if is_loopback(config.host):  # a page another site serves must not reach it (rebinding)
        public = url_host(state.config.public_url) if state is not None else None
        names = (*config.allowed_hosts, *([public] if public else []))
        middlewares.append(host_guard(names))  # inside: its 421s are counted too
    app = web.Application(client_max_size=config.max_request_bytes, middlewares=middlewares)
    app[CONFIG] = config
    app[POOL] = pool
    app[AUTH] = auth or Authenticator([])
    app[METRICS] = metrics
    app[QUOTAS] = quotas or Quotas(config.rate_limit, config.rate_burst)
    signer = None
    if state is not None:
        if state.config.secret is None:
            raise ValueError("the state store needs MAILPOOL_STATE_SECRET (mailpool state secret)")
        signer = Signer(state.config.secret, state.config.previous_secrets)
        app[STATE] = state
        app[SIGNER] = signer
    app[UNSUBSCRIBES] = Quotas(state_api.UNSUBSCRIBE_RATE, state_api.UNSUBSCRIBE_BURST)
    app[PUBLISHER] = Publisher(pool, keyring, state)
    if keyring is not None:
        app[KEYRING] = keyring
    app[ACCEPTOR] = Acceptor(
        pool,
        metrics,
        retry_after_s=config.retry_after_s,
        keyring=keyring,
        state=state,
        signer=signer,
        limits=config.email_limits,
        key_streams=config.streams_by_key,
        stream_quotas=_stream_quotas(config, pool),
    )

    async def open_pool(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(pool)
            if state is not None:
                await stack.enter_async_context(state)
            yield
            await app[ACCEPTOR].settled()

    app.cleanup_ctx.append(open_pool)
    app.router.add_post("/v1/emails", post_email)
    app.router.add_post("/v1/emails/batch", post_batch)
    app.router.add_get("/v1/emails/{id}", _scoped(state_api.get_email))
    app.router.add_get("/v1/suppressions", _scoped(state_api.list_suppressions))
    app.router.add_get("/v1/suppressions/{address}", _scoped(state_api.get_suppression))
    app.router.add_put("/v1/suppressions/{address}", _scoped(state_api.put_suppression))
    app.router.add_delete("/v1/suppressions/{address}", _scoped(state_api.delete_suppression))
    app.router.add_get("/unsubscribe/{token}", state_api.unsubscribe_page)
    app.router.add_post("/unsubscribe/{token}", state_api.unsubscribe)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/openapi.json", openapi)
    return app
