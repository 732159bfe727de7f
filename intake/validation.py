"""Intake's validation of a producer's email request: every field checked, named when it is
wrong (``ValidationError``, with the HTTP status intake answers), and turned into the
``Email`` of ``core.envelope``, which only carries it."""

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from core.addresses import AddressError, Mailbox, parse_mailbox
from core.attachments import AttachmentError, EmailLimits, parse_attachments
from core.envelope import Email

MAX_RECIPIENTS = 50
MAX_SUBJECT = 998
MAX_HEADERS = 50
MAX_HEADER_NAME = 76
MAX_HEADER_VALUE = 998
MAX_TAGS = 20
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256
MAX_GROUP = 128

#: Headers mailpool writes itself; a producer may not set them through ``headers``.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "sender",
        "return-path",
    }
)
#: Header prefixes a provider reads as instructions, not content: SES takes its
#: configuration set and identity ARNs from ``X-SES-*`` headers of a raw message, which
#: would let a key pick another stream's configuration set.
RESERVED_PREFIXES = ("x-ses-",)
EMAIL_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply_to",
        "subject",
        "text",
        "html",
        "headers",
        "tags",
        "group",
        "stream",
        "unsubscribe",
        "attachments",
    }
)
_LIST_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEADER_NAME = re.compile(r"[!-9;-~]+")
# Every character str.splitlines() breaks at (the email package refuses them in headers), and NUL.
_LINE_BREAK = re.compile(r"[\r\n\x00\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# Characters an SQS message body may not hold (JSON escapes the other control characters).
_NOT_SQS = re.compile(r"[\ufffe\uffff]")
# SQS MessageGroupId: alphanumerics and punctuation.
_GROUP = re.compile(r"""[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]+""")


class ValidationError(ValueError):
    """Bad input; ``field`` names where, ``code`` says what, the message carries no input.

    ``status`` is the HTTP status intake answers: 422, or 413 for an email too large.
    """

    def __init__(
        self, field: str | None, message: str, code: str = "invalid", status: int = 422
    ) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message
        self.status = status


def _string(value: Any, name: str, *, limit: int | None = None, one_line: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string", "invalid_type")
    if limit is not None and len(value) > limit:
        raise ValidationError(name, f"must be at most {limit} characters", "too_long")
    if one_line and _LINE_BREAK.search(value):
        raise ValidationError(name, "must not contain line breaks", "header_injection")
    if _NOT_SQS.search(value):
        raise ValidationError(name, "contains a Unicode non-character", "invalid_character")
    if "\x00" in value:  # 7bit and 8bit text may not hold one (RFC 2045 2.7, 2.8)
        raise ValidationError(name, "contains a NUL character", "invalid_character")
    return value


def _mailbox(value: Any, name: str) -> Mailbox:
    raw = _string(value, name)
    try:
        return parse_mailbox(raw)
    except AddressError as exc:
        raise ValidationError(name, str(exc), "invalid_address") from None


def _mailboxes(value: Any, name: str) -> tuple[Mailbox, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (_mailbox(value, name),)
    if not isinstance(value, list):
        raise ValidationError(name, "must be an address or a list of addresses", "invalid_type")
    if len(value) > MAX_RECIPIENTS:
        raise ValidationError(name, f"at most {MAX_RECIPIENTS} addresses", "too_many")
    return tuple(_mailbox(item, f"{name}[{i}]") for i, item in enumerate(value))


def _headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("headers", "must be an object", "invalid_type")
    if len(value) > MAX_HEADERS:
        raise ValidationError("headers", f"at most {MAX_HEADERS} headers", "too_many")
    headers: dict[str, str] = {}
    seen: set[str] = set()
    for key, raw in value.items():
        name = f"headers.{key}" if _HEADER_NAME.fullmatch(key) else "headers"
        if len(key) > MAX_HEADER_NAME or not _HEADER_NAME.fullmatch(key):
            raise ValidationError(name, "is not a valid header name", "invalid_header")
        if key.lower() in RESERVED_HEADERS or key.lower().startswith(RESERVED_PREFIXES):
            raise ValidationError(name, "is set by mailpool and cannot be given", "reserved_header")
        if key.lower() in seen:
            raise ValidationError(name, "is given twice", "duplicate_header")
        seen.add(key.lower())
        headers[key] = _string(raw, name, limit=MAX_HEADER_VALUE, one_line=True)
    return headers


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("tags", "must be an object", "invalid_type")
    if len(value) > MAX_TAGS:
        raise ValidationError("tags", f"at most {MAX_TAGS} tags", "too_many")
    tags = {}
    for key, raw in value.items():
        _string(key, "tags", limit=MAX_TAG_KEY, one_line=True)
        tags[key] = _string(raw, f"tags.{key}", limit=MAX_TAG_VALUE, one_line=True)
    return tags


def _unsubscribe(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if not isinstance(value, str) or not _LIST_NAME.fullmatch(value):
        raise ValidationError(
            "unsubscribe",
            "must be true or a list name of 1-64 letters, digits, '.', '_' or '-'",
            "invalid_unsubscribe",
        )
    return value


def _check_unsubscribe(email: Email, count: int) -> None:
    if email.unsubscribe is None:
        return
    if count != 1:
        raise ValidationError(
            "unsubscribe",
            "needs exactly one recipient: the link unsubscribes that address",
            "invalid_unsubscribe",
        )
    if any(h.lower() in ("list-unsubscribe", "list-unsubscribe-post") for h in email.headers):
        raise ValidationError(
            "unsubscribe",
            "give either unsubscribe or your own List-Unsubscribe header",
            "invalid_unsubscribe",
        )


def parse_group(value: Any) -> str | None:
    """The producer's ordering group, or None when it gave none."""
    if value is None:
        return None
    group = _string(value, "group", limit=MAX_GROUP)
    if not _GROUP.fullmatch(group):
        raise ValidationError(
            "group", "must be 1-128 ASCII letters, digits or punctuation", "invalid_group"
        )
    return group


def _size(value: str | None) -> int:
    return 0 if value is None else len(value.encode("utf-8", "surrogatepass"))


def _attachments(doc: dict[str, Any], email: Email, limits: EmailLimits) -> Email:
    """``email`` with its validated attachments; past ``limits`` a 413 error."""
    budget = limits.max_bytes
    for name in ("text", "html"):
        budget -= _size(doc.get(name))
        if budget < 0:
            raise ValidationError(
                name, f"the email would exceed {limits.max_bytes} bytes", "email_too_large", 413
            )
    try:
        attachments = parse_attachments(doc.get("attachments"), limits, budget)
    except AttachmentError as exc:
        raise ValidationError(exc.field, exc.message, exc.code, exc.status) from None
    for index, part in enumerate(attachments):
        if part.inline and email.html is None:
            raise ValidationError(
                f"attachments[{index}].content_id",
                "an inline part needs an html body to show it",
                "inline_without_html",
            )
    return dataclasses.replace(email, attachments=attachments) if attachments else email


def parse_email(doc: Any, limits: EmailLimits | None = None) -> Email:
    """Validate a producer's JSON email; ``ValidationError`` names the first bad field."""
    if not isinstance(doc, dict):
        raise ValidationError(None, "the email must be a JSON object", "invalid_type")
    for key in doc:
        if key not in EMAIL_FIELDS:
            raise ValidationError(str(key), "is not a known field", "unknown_field")
    if "from" not in doc:
        raise ValidationError("from", "is required", "required")
    email = Email(
        sender=_mailbox(doc["from"], "from"),
        to=_mailboxes(doc.get("to"), "to"),
        cc=_mailboxes(doc.get("cc"), "cc"),
        bcc=_mailboxes(doc.get("bcc"), "bcc"),
        reply_to=_mailboxes(doc.get("reply_to"), "reply_to"),
        subject=_string(doc.get("subject", ""), "subject", limit=MAX_SUBJECT, one_line=True),
        text=None if doc.get("text") is None else _string(doc["text"], "text"),
        html=None if doc.get("html") is None else _string(doc["html"], "html"),
        headers=_headers(doc.get("headers")),
        tags=_tags(doc.get("tags")),
        unsubscribe=_unsubscribe(doc.get("unsubscribe")),
    )
    count = len(email.to) + len(email.cc) + len(email.bcc)
    _check_unsubscribe(email, count)
    if count == 0:
        raise ValidationError(
            "to", "at least one recipient (to, cc or bcc) is required", "required"
        )
    if count > MAX_RECIPIENTS:
        raise ValidationError("to", f"at most {MAX_RECIPIENTS} recipients in all", "too_many")
    if email.text is None and email.html is None:
        raise ValidationError("text", "text or html is required", "required")
    return _attachments(doc, email, limits or EmailLimits())


@dataclass(frozen=True, slots=True)
class Submission:
    """A producer's email request, validated: the email and the group it orders within."""

    email: Email
    group: str | None


def parse_submission(doc: Any, limits: EmailLimits | None = None) -> Submission:
    """Validate a producer's JSON request (the email and its ``group``) in one call;
    ``ValidationError`` names the first bad field."""
    email = parse_email(doc, limits)
    return Submission(email, parse_group(doc.get("group")))
