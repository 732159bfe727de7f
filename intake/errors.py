"""API errors as JSON, and the middleware that answers every failure with one."""

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from aws.errors import AwsError
from metrics.intake import IntakeMetrics

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than success: status, machine code, human message, offending field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The ``error`` object of the JSON answer."""
        return {"code": self.code, "message": self.message, "field": self.field}


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def error_response(error: ApiError) -> web.Response:
    """The JSON answer for ``error``, with Retry-After when it has one."""
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return json_response({"error": error.body()}, error.status, headers)


#: The status counted for a request whose client disconnected before it was answered (as
#: nginx logs it): not a 5xx, so no alert on server errors fires for it.
CLIENT_CLOSED = 499

#: The answer to a request whose state store or events queue did not answer.
UNAVAILABLE = "the state store did not answer; retry"

_HTTP_CODES = {
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "method not allowed on this resource"),
    413: ("request_too_large", "the request body is too large"),
}


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def error_middleware(metrics: IntakeMetrics) -> Middleware:
    """Map every failure to a JSON error (never a traceback) and count every request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc)
            if exc.status == 408:  # the rest of the body is not waited for
                response.force_close()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code, message = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
            response = error_response(ApiError(exc.status, code, message))
            if exc.status == 405:
                response.headers["Allow"] = exc.headers.get("Allow", "")
        except AwsError as exc:  # a store or queue that did not answer: the caller retries
            log.warning(
                "backing service unavailable",
                extra={"route": _route_of(request), "error": type(exc).__name__},
            )
            response = error_response(ApiError(503, "unavailable", UNAVAILABLE, retry_after=1))
        except ConnectionResetError:  # the client went away mid-request: nobody to answer
            log.info("client disconnected", extra={"route": _route_of(request)})
            response = web.Response(status=CLIENT_CLOSED)  # never written: no one reads it
        except Exception:
            log.exception("unhandled error", extra={"route": _route_of(request)})
            response = error_response(ApiError(500, "internal", "internal error"))
        metrics.request(_route_of(request), response.status, time.perf_counter() - started)
        return response

    return middleware
