"""What the client sends and gets back, typed: emails, attachments, results, statuses."""

import base64
import mimetypes
import pathlib
from dataclasses import dataclass, field
from typing import Any

Addresses = str | list[str]

#: The states of an email that reached its terminal event (``email.sent``, ``.bounced``,
#: ``.failed``; SES may still report ``delivered`` or ``complained`` after ``sent``).
TERMINAL = frozenset({"sent", "delivered", "bounced", "failed", "suppressed", "complained"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Attachment:
    """A file: its name and bytes (base64 is done for you), and optionally its type and a
    ``content_id`` that makes it inline (``cid:`` in the html)."""

    filename: str
    content: bytes
    content_type: str | None = None
    content_id: str | None = None

    @classmethod
    def from_path(cls, path: str | pathlib.Path, **kwargs: Any) -> "Attachment":
        """The file at ``path``, under its own name unless ``filename`` says otherwise."""
        file = pathlib.Path(path)
        kwargs.setdefault("filename", file.name)
        return cls(content=file.read_bytes(), **kwargs)

    def to_json(self) -> dict[str, str]:
        doc = {"filename": self.filename, "content": base64.b64encode(self.content).decode()}
        content_type = self.content_type or mimetypes.guess_type(self.filename)[0]
        if content_type:
            doc["content_type"] = content_type
        if self.content_id:
            doc["content_id"] = self.content_id
        return doc


@dataclass(frozen=True, kw_only=True, slots=True)
class Email:
    """One email, as ``POST /v1/emails`` takes it (``sender`` is the API's ``from``)."""

    sender: str
    to: Addresses = field(default_factory=list)
    cc: Addresses = field(default_factory=list)
    bcc: Addresses = field(default_factory=list)
    reply_to: Addresses | None = None
    subject: str = ""
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    #: The message stream ("transactional", the default, or "bulk", as the service has them).
    stream: str | None = None
    unsubscribe: bool | None = None
    attachments: list[Attachment] = field(default_factory=list)
    #: Made for you when absent; kept for every retry of this email.
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API's JSON for this email."""
        doc: dict[str, Any] = {"from": self.sender, "subject": self.subject}
        for name in ("to", "cc", "bcc"):
            value = getattr(self, name)
            if value:
                doc[name] = value
        optional = {
            "reply_to": self.reply_to,
            "text": self.text,
            "html": self.html,
            "group": self.group,
            "stream": self.stream,
            "unsubscribe": self.unsubscribe,
        }
        doc.update({k: v for k, v in optional.items() if v is not None})
        if self.headers:
            doc["headers"] = self.headers
        if self.tags:
            doc["tags"] = self.tags
        if self.attachments:
            doc["attachments"] = [a.to_json() for a in self.attachments]
        return doc


#: The API's fields of an email, as ``Email.to_json`` writes them (held to /openapi.json).
EMAIL_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "reply_to", "subject", "text", "html", "headers", "tags"}
    | {"group", "stream", "unsubscribe", "attachments"}
)


@dataclass(frozen=True, slots=True)
class Sent:
    """An accepted email: SQS has it. ``idempotency_key``: the key it went with."""

    id: str
    idempotency_key: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Recipient:
    position: int
    state: str
    code: int | None = None
    enhanced: str | None = None
    at: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Status:
    """What became of an email (``GET /v1/emails/{id}``)."""

    id: str
    state: str
    created_at: str | None = None
    updated_at: str | None = None
    attempts: int = 0
    recipients: list[Recipient] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Status":
        recipients = [
            Recipient(**{k: r.get(k) for k in ("position", "state", "code", "enhanced", "at")})
            for r in doc.get("recipients") or []
        ]
        return cls(
            id=str(doc["id"]),
            state=str(doc["state"]),
            created_at=doc.get("created_at"),
            updated_at=doc.get("updated_at"),
            attempts=int(doc.get("attempts") or 0),
            recipients=recipients,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Suppression:
    address: str
    reason: str | None = None
    created_at: str | None = None
    email_id: str | None = None
    #: The mailing list it holds for (a one-click unsubscribe); None: every email of the key.
    list: str | None = None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> "Suppression":
        """An entry as the API shows it (fields a newer server adds are ignored)."""
        return cls(
            address=str(doc["address"]),
            reason=doc.get("reason"),
            created_at=doc.get("created_at"),
            email_id=doc.get("email_id"),
            list=doc.get("list"),
        )
