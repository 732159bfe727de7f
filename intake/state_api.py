"""What intake answers from the state store: email status, the suppression list, and the
one-click unsubscribe links it wrote into emails (RFC 8058). A store that does not answer
(``AwsError``) is intake's error middleware's to answer: 503 with Retry-After."""

import logging
import re
import time
from urllib.parse import unquote

from aiohttp import web

from core import events as ev
from core.addresses import AddressError
from core.events import Event, Recipient
from intake.appkeys import PUBLISHER, SIGNER, STATE, UNSUBSCRIBES
from intake.errors import ApiError, json_response
from state import status
from state.store import State
from state.suppressions import Suppression, normalise
from state.tokens import Unsubscribe

log = logging.getLogger(__name__)

MAX_PAGE = 1000
#: What one link may be posted: a burst of a few (a mail client and a person), then 1/s.
UNSUBSCRIBE_RATE = 1.0
UNSUBSCRIBE_BURST = 5
_LIST_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _state(request: web.Request) -> State:
    state = request.app.get(STATE)
    if state is None:
        raise ApiError(
            404,
            "state_disabled",
            "this mailpool runs without its state store (MAILPOOL_STATE=on turns it on)",
        )
    return state


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no email with this id was sent with this API key")


async def get_email(request: web.Request, scope: str) -> web.Response:
    """GET /v1/emails/{id}: the email's state, per recipient by position."""
    state = _state(request)
    email_id = request.match_info["id"]
    if len(email_id) > 64:
        raise _not_found()
    owner, items = await state.status(email_id)

    signer = request.app.get(SIGNER)
    issued = None if signer is None else signer.issued_at(scope, email_id)
    if items:
        if owner != scope:
            raise _not_found()
        created = issued if issued is not None else min(float(i["at"]) for i in items)
        return json_response(status.fold(email_id, items, created))
    # No record yet: an id this key was given (signed) is queued, until it expires.
    if issued is None or time.time() - issued > state.config.status_s:
        raise _not_found()
    return json_response(status.fold(email_id, [], issued))


def _address(request: web.Request) -> str:
    raw = unquote(request.match_info["address"])
    try:
        return normalise(raw)
    except AddressError as exc:
        raise ApiError(422, "invalid_address", str(exc), "address") from None


def _list(request: web.Request) -> str | None:
    """The mailing list a suppression request names (``?list=``): one-click unsubscribes are
    kept per list; without one, the key's whole list (bounces, complaints, by hand)."""
    name = request.query.get("list")
    if name is None:
        return None
    if not _LIST_NAME.fullmatch(name):
        message = "must be a list name of 1-64 letters, digits, '.', '_' or '-'"
        raise ApiError(422, "invalid_list", message, "list")
    return name


async def list_suppressions(request: web.Request, scope: str) -> web.Response:
    """GET /v1/suppressions?limit=&after=&list=: a page of the list (or of one mailing
    list's unsubscribes), in address order."""
    state = _state(request)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(422, "invalid_limit", f"must be an integer within 1..{MAX_PAGE}", "limit")
    after = request.query.get("after") or None
    list_name = _list(request)
    entries, last = await state.suppressions.page(scope, after, limit, list_name)

    return json_response({"data": [e.document() for e in entries], "next": last})


async def get_suppression(request: web.Request, scope: str) -> web.Response:
    """GET /v1/suppressions/{address}?list=: the entry, or 404 when the address is not on
    it."""
    state = _state(request)
    address = _address(request)
    entry = await state.suppressions.get(scope, address, _list(request))

    if entry is None:
        raise ApiError(404, "not_suppressed", "this address is not on the suppression list")
    return json_response(entry.document())


async def put_suppression(request: web.Request, scope: str) -> web.Response:
    """PUT /v1/suppressions/{address}?list=: suppress by hand (reason ``manual``)."""
    state = _state(request)
    entry = Suppression(_address(request), "manual", time.time(), list=_list(request))
    await state.suppressions.add(scope, entry)

    return json_response(entry.document())


async def delete_suppression(request: web.Request, scope: str) -> web.Response:
    """DELETE /v1/suppressions/{address}?list=: mail this address again."""
    state = _state(request)
    address = _address(request)
    removed = await state.suppressions.remove(scope, address, _list(request))

    if not removed:
        raise ApiError(404, "not_suppressed", "this address is not on the suppression list")
    return web.Response(status=204)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head>
<body><form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<p>Stop receiving these emails?</p><button type="submit">Unsubscribe</button></form></body>
</html>"""


def _token(request: web.Request) -> Unsubscribe:
    signer = request.app.get(SIGNER)
    what = None if signer is None else signer.read_unsubscribe_token(request.match_info["token"])
    if what is None:
        raise ApiError(404, "not_found", "this unsubscribe link is not valid")
    return what


async def unsubscribe_page(request: web.Request) -> web.Response:
    """GET /unsubscribe/{token}: a page with a button (a GET never unsubscribes: mail
    scanners follow links)."""
    _state(request)
    _token(request)
    return web.Response(text=_PAGE, content_type="text/html")


async def unsubscribe(request: web.Request) -> web.Response:
    """POST /unsubscribe/{token} (no API key): take the address off the list the link
    names (for the key that sent it) and emit ``email.unsubscribed``. Idempotent: once done,
    a replay answers the same and writes and publishes nothing. A forged or altered token
    is a 404; one link posted faster than a person would, 429."""
    state = _state(request)
    what = _token(request)
    grant = request.app[UNSUBSCRIBES].take(what.email_id, 1)
    if not grant.admitted:
        raise ApiError(
            429,
            "rate_limited",
            "this link was used too often; retry later",
            retry_after=grant.retry_after_s,
        )
    done = await state.suppressions.get(what.scope, what.address, what.list)

    if done is not None:
        return json_response({"status": "unsubscribed"})
    event = Event(
        type=ev.UNSUBSCRIBED,
        email_id=what.email_id,
        recipients=(Recipient(0, what.address),),
        attempt=0,
        scope=what.scope,
        reason=what.list,
        origin=what.list,
    )
    await request.app[PUBLISHER].publish([event])
    log.info("unsubscribed", extra={"id": what.email_id})
    return json_response({"status": "unsubscribed"})
