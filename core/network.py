"""Listen addresses: whether a process is reachable from other machines, and which names a
process on loopback answers to."""

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

#: The names a loopback service answers to by itself.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without its port (``[::1]:80`` is ``::1``), lower-cased."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    name, _, port = value.rpartition(":")
    return name if name and port.isdigit() else value


def url_host(url: str | None) -> str | None:
    """The host a URL names (for a service reached at a public URL through a proxy)."""
    if not url:
        return None
    return urlsplit(url).hostname


def host_guard(
    extra: Iterable[str] = (),
) -> Middleware:
    """A middleware for a service listening on loopback: a request whose ``Host`` is not a
    loopback name (nor one of ``extra``) is answered 421 before any handler runs. A page on
    another site that a browser resolves to 127.0.0.1 (DNS rebinding) names its own host, so
    it reaches nothing."""
    allowed = LOOPBACK_NAMES | {name.lower() for name in extra}

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if host_name(request.headers.get("Host", "")) not in allowed:
            error = {
                "code": "misdirected_request",
                "message": "this service answers only to its loopback names",
                "field": "Host",
            }
            return web.Response(
                body=orjson.dumps({"error": error}), status=421, content_type="application/json"
            )
        return await handler(request)

    return guard
