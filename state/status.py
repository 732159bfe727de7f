"""Email status: one record per event of an email, folded into its state when read.

A record is written for every event (the event's deterministic id is its sort key, so a
repeat after a crash overwrites itself): ``pk = email#<id>``, ``sk = ev#<event id>``, with
the event's type, time, attempt, the API-key scope that sent the email, and per recipient
its position and SMTP / enhanced codes — never an address, a subject or a body. Records are
only ever added, never updated, so writers never race; the reader folds them:

- a recipient's state is the highest of its events' states, in the order
  queued < deferred < sent < delivered < bounced, failed, suppressed < complained;
- the email's state is the highest of its recipients' states.
"""

import time
from collections.abc import Sequence
from typing import Any

import orjson

from core import events as ev
from core.events import Event, iso_time

PREFIX = "email#"

#: The state an event puts its recipients in.
STATE_OF = {
    ev.DEFERRED: "deferred",
    ev.DELIVERY_DELAYED: "deferred",
    ev.SENT: "sent",
    ev.DELIVERED: "delivered",
    ev.BOUNCED: "bounced",
    ev.FAILED: "failed",
    ev.SUPPRESSED: "suppressed",
    ev.COMPLAINED: "complained",
}
RANK = {
    "queued": 0,
    "deferred": 1,
    "sent": 2,
    "delivered": 3,
    "bounced": 4,
    "failed": 4,
    "suppressed": 4,
    "complained": 5,
}
#: Every state an email or a recipient can be in.
STATES = tuple(RANK)


def partition(email_id: str) -> str:
    """The partition key of an email's records."""
    return PREFIX + email_id


def records(events: Sequence[Event], expires_after_s: float) -> list[dict[str, Any]]:
    """The status records of ``events`` (those that change a state)."""
    found = []
    for event in events:
        if event.type not in STATE_OF:
            continue
        codes = [[r.position, r.code, r.enhanced] for r in event.recipients]
        found.append(
            {
                "pk": partition(event.email_id),
                "sk": f"ev#{event.id}",
                "scope": event.scope or "",
                "type": event.type,
                "at": round(event.created_at, 3),
                "attempt": event.attempt,
                "r": orjson.dumps(codes).decode(),
                "terminal": event.terminal,
                "expires": int(event.created_at + expires_after_s),
            }
        )
    return found


def fold(
    email_id: str, items: Sequence[dict[str, Any]], created_at: float | None
) -> dict[str, Any]:
    """The status document of an email from its records (none: it is queued)."""
    recipients: dict[int, dict[str, Any]] = {}
    state, attempts, updated = "queued", 0, created_at
    for item in sorted(items, key=lambda i: float(i["at"])):
        event_state = STATE_OF[item["type"]]
        attempts = max(attempts, int(item["attempt"]))
        updated = float(item["at"])
        if RANK[event_state] >= RANK[state]:
            state = event_state
        for position, code, enhanced in orjson.loads(item["r"]):
            current = recipients.setdefault(position, {"position": position, "state": "queued"})
            if RANK[event_state] >= RANK[current["state"]]:
                current.update(state=event_state, at=iso_time(float(item["at"])))
            if code is not None or enhanced is not None:
                current.update(code=code, enhanced=enhanced)
    if recipients:
        state = max((r["state"] for r in recipients.values()), key=RANK.__getitem__)
    for recipient in recipients.values():
        recipient.setdefault("code", None)
        recipient.setdefault("enhanced", None)
        recipient.setdefault("at", None)
    return {
        "id": email_id,
        "state": state,
        "created_at": iso_time(created_at) if created_at is not None else None,
        "updated_at": iso_time(updated) if updated is not None else None,
        "attempts": attempts,
        "recipients": [recipients[p] for p in sorted(recipients)],
    }


def expired(item: dict[str, Any], now: float | None = None) -> bool:
    """Whether a record's TTL has passed (DynamoDB deletes it only some time later)."""
    expires = item.get("expires")
    return expires is not None and float(expires) < (time.time() if now is None else now)
