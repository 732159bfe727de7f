"""Delivery events: what became of an accepted email, one document per outcome.

The sender writes one for every outcome of a delivery attempt, and ``mailpool webhooks``
adds those of provider feedback (SES). Types:

    email.sent               the provider accepted the email for these recipients (terminal)
    email.deferred           a transient failure; ``next_attempt_at`` says when it is retried
    email.bounced            refused for good (SMTP 5xx) for these recipients; terminal when
                             every recipient was refused
    email.failed             given up, with a ``reason`` (retries exhausted, undecodable, …)
    email.delivered          (SES) the receiving server accepted it
    email.delivery_delayed   (SES) the receiving server has not accepted it yet
    email.complained         (SES) a recipient marked it as spam
    email.suppressed         not sent to these recipients: they are on the suppression list;
                             terminal when no recipient was left to send to
    email.unsubscribed       a recipient used the email's one-click unsubscribe link

Every accepted email ends in exactly one terminal event: ``email.sent`` (at least one
recipient accepted; refused ones get their own ``email.bounced``), ``email.bounced`` (every
recipient refused) or ``email.failed``. An event's ``id`` is deterministic: the same outcome
of the same email (after a crash, say) has the same id, so a receiver drops the copy by it.
Events name recipients (producers act on bounces), never subjects or bodies; in the queue
they are sealed like envelopes when encryption is on, and they are never logged.
"""

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from core.sealing import Keyring, SealError

VERSION = 1
SENT = "email.sent"
DEFERRED = "email.deferred"
BOUNCED = "email.bounced"
FAILED = "email.failed"
DELIVERED = "email.delivered"
DELIVERY_DELAYED = "email.delivery_delayed"
COMPLAINED = "email.complained"
SUPPRESSED = "email.suppressed"
UNSUBSCRIBED = "email.unsubscribed"
#: Every event type, in the order the documentation lists them.
TYPES = (
    SENT,
    DEFERRED,
    BOUNCED,
    FAILED,
    DELIVERED,
    DELIVERY_DELAYED,
    COMPLAINED,
    SUPPRESSED,
    UNSUBSCRIBED,
)
#: Outcomes that happen at most once per email (per recipient set): their ids leave out
#: the attempt, so a repeat after a crash has the same id.
_ONCE = frozenset({SENT, BOUNCED, FAILED, DELIVERED, COMPLAINED, SUPPRESSED, UNSUBSCRIBED})


class EventError(ValueError):
    """A queue message that is not a mailpool event these keys can read."""


#: The message tags by which SES feedback names an email: its id, and its API-key scope
#: (for the suppression list) when that is a valid tag value.
ID_TAG = "mailpool-id"
SCOPE_TAG = "mailpool-scope"
_ENHANCED = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def enhanced_code(reply: str) -> str | None:
    """The enhanced status code an SMTP reply text starts with, if any."""
    match = _ENHANCED.match(reply)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A recipient an event concerns: its position in to + cc + bcc, and the codes."""

    position: int
    address: str
    #: The SMTP reply code (250, 550, …), when there was one.
    code: int | None = None
    #: The enhanced status code ("5.1.1"), when there was one.
    enhanced: str | None = None

    def document(self) -> dict[str, Any]:
        """As in the event's JSON."""
        return {
            "position": self.position,
            "address": self.address,
            "code": self.code,
            "enhanced": self.enhanced,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One outcome of one email."""

    type: str
    email_id: str
    recipients: tuple[Recipient, ...]
    attempt: int
    provider: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: The API key (its name) that sent the email: webhook endpoints may filter on it.
    scope: str | None = None
    #: The message stream the email was sent on.
    stream: str | None = None
    created_at: float = field(default_factory=time.time)
    reason: str | None = None
    next_attempt_at: float | None = None
    #: What makes an outcome distinct beyond type and recipients (a feedback's own id).
    origin: str = ""
    #: Whether this event ends the email's story (``data.terminal`` in the document).
    terminal: bool = False

    @property
    def id(self) -> str:
        """Deterministic: the same outcome of the same email always has the same id."""
        positions = ",".join(str(r.position) for r in self.recipients)
        attempt = "" if self.type in _ONCE else str(self.attempt)
        key = f"{self.email_id}\x00{self.type}\x00{positions}\x00{attempt}\x00{self.origin}"
        return "evt_" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()

    def document(self) -> dict[str, Any]:
        """The JSON document webhooks receive."""
        data: dict[str, Any] = {
            "email_id": self.email_id,
            "tags": dict(self.tags),
            "recipients": [r.document() for r in self.recipients],
            "attempt": self.attempt,
            "provider": self.provider,
            "terminal": self.terminal,
        }
        if self.stream is not None:
            data["stream"] = self.stream
        if self.reason is not None:
            data["reason"] = self.reason
        if self.next_attempt_at is not None:
            data["next_attempt_at"] = iso_time(self.next_attempt_at)
        return {
            "type": self.type,
            "id": self.id,
            "created_at": iso_time(self.created_at),
            "data": data,
        }

    def _content(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "email_id": self.email_id,
            "recipients": [[r.position, r.address, r.code, r.enhanced] for r in self.recipients],
            "attempt": self.attempt,
            "provider": self.provider,
            "tags": dict(self.tags),
            "scope": self.scope,
            "stream": self.stream,
            "created_at": self.created_at,
            "reason": self.reason,
            "next_attempt_at": self.next_attempt_at,
            "origin": self.origin,
            "terminal": self.terminal,
        }

    def encode(self, keyring: Keyring | None = None) -> str:
        """The events-queue body: only ``v`` and ``id`` stay readable when sealed."""
        content = self._content()
        if keyring is None:
            return orjson.dumps({"v": VERSION, "id": self.id, **content}).decode()
        sealed = keyring.seal(orjson.dumps(content), self.id.encode())
        return orjson.dumps({"v": VERSION, "id": self.id, "sealed": sealed}).decode()

    @classmethod
    def decode(cls, raw: str | bytes, keyring: Keyring | None = None) -> "Event":
        """Read an events-queue body; ``EventError`` when it is not one these keys open."""
        try:
            doc = orjson.loads(raw)
            if doc["v"] != VERSION:
                raise EventError(f"unknown event version {doc['v']!r}")
            if "sealed" in doc:
                if keyring is None:
                    raise EventError("a sealed event and no encryption keys")
                doc = orjson.loads(keyring.open(doc["sealed"], str(doc["id"]).encode()))
            return cls(
                type=str(doc["type"]),
                email_id=str(doc["email_id"]),
                recipients=tuple(Recipient(*r) for r in doc["recipients"]),
                attempt=int(doc["attempt"]),
                provider=doc["provider"],
                tags=dict(doc["tags"]),
                scope=doc["scope"],
                stream=doc.get("stream"),
                created_at=float(doc["created_at"]),
                reason=doc["reason"],
                next_attempt_at=doc["next_attempt_at"],
                origin=str(doc["origin"]),
                terminal=bool(doc["terminal"]),
            )
        except (EventError, SealError) as exc:
            raise EventError(str(exc)) from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EventError(f"not a mailpool event ({type(exc).__name__})") from None


def recipients_of(addresses: Sequence[str]) -> tuple[Recipient, ...]:
    """Every one of ``addresses``, numbered by position."""
    return tuple(Recipient(position, address) for position, address in enumerate(addresses))


def iso_time(timestamp: float) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds (``2026-12-01T10:00:00.000Z``)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
