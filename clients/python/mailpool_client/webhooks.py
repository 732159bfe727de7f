"""Verifying mailpool's webhooks (Standard Webhooks signatures, the reference library
underneath), with the mistakes people make named in the error."""

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

#: How far a webhook's timestamp may be from now (the reference library's tolerance).
TOLERANCE_S = 5 * 60


class InvalidWebhook(Exception):
    """A webhook that must not be trusted; the message says why and what to check."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """One event: ``type`` (``email.sent``, …), the ``email_id`` it is about, when it
    happened (ISO 8601), and its ``data`` as sent."""

    webhook_id: str
    type: str
    email_id: str | None
    created_at: str | None
    data: dict[str, Any] = field(default_factory=dict)


def verify(body: bytes | str, headers: Mapping[str, str], secret: str) -> Event:
    """The event of a webhook request whose signature holds for ``secret`` (``whsec_…``;
    several secrets may be given space-separated while one is rotated)."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    lowered = {k.lower(): v for k, v in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in lowered
    ]
    if missing:
        raise InvalidWebhook(
            f"missing header(s) {', '.join(missing)}: pass the request's headers as received"
        )
    _check_time(lowered["webhook-timestamp"])
    failures = []
    for one in secret.split():
        try:
            Webhook(one).verify(raw, lowered)
            break
        except WebhookVerificationError as exc:
            failures.append(str(exc))
    else:
        raise InvalidWebhook(_why(raw, failures))
    doc = json.loads(raw)
    event: dict[str, Any] = doc if isinstance(doc, dict) else {}
    found = event.get("data")
    data: dict[str, Any] = found if isinstance(found, dict) else {}
    return Event(
        webhook_id=lowered["webhook-id"],
        type=str(event.get("type", "")),
        email_id=data.get("email_id"),
        created_at=event.get("created_at"),
        data=data,
    )


def _check_time(stamp: str) -> None:
    try:
        at = int(stamp)
    except ValueError:
        raise InvalidWebhook("webhook-timestamp is not a number of seconds") from None
    off = time.time() - at
    if abs(off) > TOLERANCE_S:
        raise InvalidWebhook(
            f"webhook-timestamp is {abs(off):.0f} s {'old' if off > 0 else 'ahead'}: a replayed "
            "request, a stale queue in front of your endpoint, or a clock that is off"
        )


def _why(raw: bytes, failures: list[str]) -> str:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return "no signature matches, and the body is not the JSON mailpool sent"
    if json.dumps(parsed) == raw.decode(errors="replace") or json.dumps(
        parsed, separators=(",", ":")
    ) == raw.decode(errors="replace"):
        return (
            "no signature matches: the body looks re-serialized by your framework "
            "(verify the raw request body, byte for byte), or the secret is not this endpoint's"
        )
    return (
        "no signature matches: check the endpoint's secret (whsec_…) and that the body is "
        "the raw request body"
    )
