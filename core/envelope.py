"""The email document: built by intake once it validated the request (``intake.validation``),
carried as the SQS body, read by senders.

This is the only module that knows the envelope's schema. Version 1, as JSON (orjson):

    {"v": 1, "id": str, "group": str, "accepted_at": float (epoch seconds),
     "scope": str|null, "stream": str (optional), "list": str (optional),
     "email": {"from": [name, addr], "to"|"cc"|"bcc"|"reply_to": [[name, addr], ...],
               "subject": str, "text": str|null, "html": str|null,
               "headers": {name: value}, "tags": {key: value},
               "attachments": [[filename, content_type, content_id|null, base64], ...]}}

``attachments`` is absent when there are none (envelopes from before attachments read alike);
``list`` (the mailing list of a one-click unsubscribe link) when there is none.

Sealed (MAILPOOL_ENCRYPTION_KEYS set): {"v": 1, "id": str, "sealed": {"kid", "n", "ct"}},
where ``ct`` is everything but ``v`` and ``id``, AES-GCM-encrypted and bound to the id.

An envelope too large for its queue travels through S3: the pool (``pool.blobs``) puts a
pointer in its place and resolves it on receipt.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.addresses import Mailbox
from core.attachments import Attachment
from core.sealing import Keyring, SealError

VERSION = 1
#: Envelopes past this many bytes are parsed by the stdlib's json (see ``Envelope.decode``).
_ORJSON_MAX = 1024 * 1024


class EnvelopeError(ValueError):
    """A queue message that is not a mailpool envelope of a known version.

    ``reason`` is the dead-letter reason: ``undecodable_envelope``, or
    ``unsealable_envelope`` for a sealed one these keys cannot open.
    """

    def __init__(self, message: str, reason: str = "undecodable_envelope") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Email:
    """A validated email request."""

    sender: Mailbox
    to: tuple[Mailbox, ...] = ()
    cc: tuple[Mailbox, ...] = ()
    bcc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Files, attached or (with a Content-ID) inline, in the producer's order.
    attachments: tuple[Attachment, ...] = ()
    #: The list a one-click unsubscribe link names ("default" for ``true``); intake turns it
    #: into List-Unsubscribe headers and the envelope's ``mailing_list``.
    unsubscribe: str | None = None
    #: Positions (in ``recipients``) not to send to: the sender's suppressed recipients.
    #: Never queued; the headers still name them, the SMTP envelope does not.
    skip: frozenset[int] = frozenset()

    @property
    def recipients(self) -> list[str]:
        """Every envelope recipient (to, cc and bcc), in that order."""
        return [m.addr for m in (*self.to, *self.cc, *self.bcc)]

    @property
    def deliver_to(self) -> list[str]:
        """The recipients to send to: ``recipients`` without the skipped positions."""
        return [a for p, a in enumerate(self.recipients) if p not in self.skip]

    def kept(self, mailboxes: tuple[Mailbox, ...], offset: int) -> list[str]:
        """Addresses of ``mailboxes`` (starting at position ``offset``) not skipped."""
        return [m.addr for p, m in enumerate(mailboxes, offset) if p not in self.skip]


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """An accepted email with its mailpool id, ordering group and acceptance time."""

    id: str
    group: str
    accepted_at: float
    email: Email
    #: The API key (its name) that sent it; its events carry it for webhook filters.
    scope: str | None = None
    #: The message stream it was sent on (empty in envelopes written before streams).
    stream: str = ""
    #: The mailing list its one-click unsubscribe link names: the sender skips recipients
    #: who unsubscribed from that list (and only from it).
    mailing_list: str | None = None

    def encode(self, keyring: Keyring | None = None) -> bytes:
        """The UTF-8 JSON that becomes the SQS message body; sealed when given a keyring.

        Sealed, only ``v`` and ``id`` stay readable; everything else is AES-GCM ciphertext
        bound to the id.
        """
        content = self._content()
        if keyring is None:
            return orjson.dumps({"v": VERSION, "id": self.id, **content})
        sealed = keyring.seal(orjson.dumps(content), self.id.encode())
        return orjson.dumps({"v": VERSION, "id": self.id, "sealed": sealed})

    def _content(self) -> dict[str, Any]:
        e = self.email
        return {
            "group": self.group,
            "accepted_at": self.accepted_at,
            "scope": self.scope,
            **({"stream": self.stream} if self.stream else {}),
            **({"list": self.mailing_list} if self.mailing_list else {}),
            "email": {
                "from": [e.sender.name, e.sender.addr],
                "to": [[m.name, m.addr] for m in e.to],
                "cc": [[m.name, m.addr] for m in e.cc],
                "bcc": [[m.name, m.addr] for m in e.bcc],
                "reply_to": [[m.name, m.addr] for m in e.reply_to],
                "subject": e.subject,
                "text": e.text,
                "html": e.html,
                "headers": dict(e.headers),
                "tags": dict(e.tags),
                **(
                    {"attachments": [_attachment_doc(a) for a in e.attachments]}
                    if e.attachments
                    else {}
                ),
            },
        }

    @classmethod
    def decode(cls, raw: str | bytes, keyring: Keyring | None = None) -> "Envelope":
        """Read an SQS message body; ``EnvelopeError`` if it is not a v1 envelope."""
        try:
            # orjson needs about 13 times a large string's size while it parses it; the
            # stdlib's parser 2 times, at 1.6 times the time: large envelopes (attachments)
            # take the stdlib's.
            doc = orjson.loads(raw) if len(raw) <= _ORJSON_MAX else json.loads(raw)
            if doc["v"] != VERSION:
                raise EnvelopeError(f"unknown envelope version {doc['v']!r}")
            if "sealed" in doc:
                doc = {**doc, **_unseal(doc, keyring)}
            e = doc["email"]
            return cls(
                id=str(doc["id"]),
                group=str(doc["group"]),
                accepted_at=float(doc["accepted_at"]),
                scope=doc.get("scope"),  # absent from envelopes written before events
                stream=str(doc.get("stream", "")),
                mailing_list=doc.get("list"),
                email=Email(
                    sender=Mailbox(*e["from"]),
                    to=tuple(Mailbox(*m) for m in e["to"]),
                    cc=tuple(Mailbox(*m) for m in e["cc"]),
                    bcc=tuple(Mailbox(*m) for m in e["bcc"]),
                    reply_to=tuple(Mailbox(*m) for m in e["reply_to"]),
                    subject=str(e["subject"]),
                    text=e["text"],
                    html=e["html"],
                    headers=dict(e["headers"]),
                    tags=dict(e["tags"]),
                    attachments=tuple(_attachment_of(a) for a in e.get("attachments", ())),
                ),
            )
        except EnvelopeError:
            raise
        except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise EnvelopeError(f"not a mailpool envelope ({type(exc).__name__})") from None


def _attachment_doc(a: Attachment) -> list[Any]:
    return [a.filename, a.content_type, a.content_id, a.data]


def _attachment_of(doc: list[Any]) -> Attachment:
    filename, content_type, content_id, data = doc
    # Canonical base64: every 4 characters carry 3 bytes, less the padding.
    size = len(data) // 4 * 3 - data[-2:].count("=")
    return Attachment(
        filename=str(filename),
        content_type=str(content_type),
        content_id=content_id,
        data=str(data),
        size=size,
    )


def _unseal(doc: dict[str, Any], keyring: Keyring | None) -> dict[str, Any]:
    if keyring is None:
        raise EnvelopeError("a sealed envelope and no encryption keys", "unsealable_envelope")
    try:
        content: dict[str, Any] = orjson.loads(keyring.open(doc["sealed"], str(doc["id"]).encode()))
    except SealError:
        raise EnvelopeError(
            "a sealed envelope these keys cannot open", "unsealable_envelope"
        ) from None
    return content


def message_group(group: str | None, message_id: str) -> str:
    """The SQS MessageGroupId for a producer's group: a digest, so that a group named after
    a recipient never appears in SQS's metadata (which encryption does not cover)."""
    if group is None:
        return message_id
    return "g" + hashlib.blake2b(group.encode(), digest_size=16).hexdigest()
