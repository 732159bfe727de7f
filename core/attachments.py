"""Attachments and inline parts: validated once at intake, carried base64 in the envelope.

A producer gives ``attachments: [{filename, content (base64), content_type?, content_id?}]``.
``content_id`` makes the part inline: the HTML body shows it as ``cid:<content_id>``.
Everything SES would refuse later (its unsupported file extensions) and everything a mail
reader could misread (path separators or control characters in a name, a multipart
content type) is refused here, with the field named, instead of dead-lettered later.
"""

import binascii
import mimetypes
import re
from dataclasses import dataclass
from typing import Any

#: Bytes of an email (text, html and decoded attachments) past which intake answers 413.
DEFAULT_MAX_EMAIL_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_ATTACHMENTS = 50
#: SES's limit on FileName; RFC 2231 continuations carry a long one in short lines.
MAX_FILENAME = 255
#: SES's limit on ContentId (and a Content-ID header that fits one line).
MAX_CONTENT_ID = 78
MAX_CONTENT_TYPE = 78

#: The file extensions SES refuses to send ("Amazon SES unsupported attachment types",
#: docs.aws.amazon.com/ses/latest/dg/mime-types.html), refused whatever the provider.
# fmt: off
REFUSED_EXTENSIONS = frozenset({
    "ade", "adp", "app", "asp", "bas", "bat", "cer", "chm", "cmd", "com", "cpl", "crt", "csh",
    "der", "exe", "fxp", "gadget", "hlp", "hta", "inf", "ins", "isp", "its", "js", "jse", "ksh",
    "lib", "lnk", "mad", "maf", "mag", "mam", "maq", "mar", "mas", "mat", "mau", "mav", "maw",
    "mda", "mdb", "mde", "mdt", "mdw", "mdz", "msc", "msh", "msh1", "msh2", "mshxml", "msh1xml",
    "msh2xml", "msi", "msp", "mst", "ops", "pcd", "pif", "plg", "prf", "prg", "reg", "scf",
    "scr", "sct", "shb", "shs", "sys", "ps1", "ps1xml", "ps2", "ps2xml", "psc1", "psc2", "tmp",
    "url", "vb", "vbe", "vbs", "vps", "vsmacros", "vss", "vst", "vsw", "vxd", "ws", "wsc",
    "wsf", "wsh", "xnk",
})
# fmt: on
ATTACHMENT_FIELDS = frozenset({"filename", "content", "content_type", "content_id"})

# Types guessed from the name: the stdlib's own table (not the machine's mime.types, so
# every host guesses alike) and the office formats it lacks.
_TYPES = mimetypes.MimeTypes(filenames=())
for _ext, _type in {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".ics": "text/calendar",
    ".webp": "image/webp",
}.items():
    _TYPES.add_type(_type, _ext)

# RFC 2045 token characters, for a type and a subtype.
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]{1,64}"
_CONTENT_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
# A Content-ID's inside (RFC 2392 msg-id without the angle brackets): dot-atom text and '@'.
_CONTENT_ID = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+")
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\u2028\u2029\ufffe\uffff]")
_WHITESPACE = re.compile(rb"[ \t\r\n]+")


class AttachmentError(ValueError):
    """A bad attachment: ``field`` names it, ``code`` says what, ``status`` is 422 or 413."""

    def __init__(self, field: str, message: str, code: str, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.code = code
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailLimits:
    """How much one email may carry (MAILPOOL_MAX_EMAIL_BYTES, MAILPOOL_MAX_ATTACHMENTS)."""

    max_bytes: int = DEFAULT_MAX_EMAIL_BYTES
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """One file: its name, MIME type, the Content-ID when inline, and its bytes as base64.

    ``data`` is base64 without line breaks, as the envelope carries it and as the renderer
    wraps it into 76-character lines: the bytes are never decoded between intake and SMTP.
    """

    filename: str
    content_type: str
    data: str
    size: int
    content_id: str | None = None

    @property
    def inline(self) -> bool:
        """Whether the HTML body shows it (``cid:``) rather than listing it as a file."""
        return self.content_id is not None

    @property
    def content(self) -> bytes:
        """The decoded bytes."""
        return binascii.a2b_base64(self.data)


def guess_type(filename: str) -> str:
    """The MIME type a file's name suggests, ``application/octet-stream`` when unknown."""
    found, encoding = _TYPES.guess_type(filename, strict=False)
    if found is None or encoding is not None:  # .gz, .bz2: the file itself is an archive
        return "application/octet-stream"
    return found


def parse_attachments(value: Any, limits: EmailLimits, budget: int) -> tuple[Attachment, ...]:
    """Validate the producer's ``attachments`` list; ``budget`` is the bytes the email may
    still take after its text and html."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AttachmentError("attachments", "must be a list of attachments", "invalid_type")
    if len(value) > limits.max_attachments:
        raise AttachmentError(
            "attachments", f"at most {limits.max_attachments} attachments", "too_many"
        )
    parts: list[Attachment] = []
    cids: set[str] = set()
    for index, item in enumerate(value):
        part = _attachment(item, f"attachments[{index}]")
        budget -= part.size
        if budget < 0:
            raise AttachmentError(
                f"attachments[{index}].content",
                f"the email would exceed {limits.max_bytes} bytes (text, html and decoded "
                "attachments)",
                "email_too_large",
                413,
            )
        if part.content_id is not None:
            if part.content_id in cids:
                raise AttachmentError(
                    f"attachments[{index}].content_id", "is given twice", "duplicate_content_id"
                )
            cids.add(part.content_id)
        parts.append(part)
    return tuple(parts)


def _attachment(item: Any, name: str) -> Attachment:
    if not isinstance(item, dict):
        raise AttachmentError(name, "must be an object", "invalid_type")
    for key in item:
        if key not in ATTACHMENT_FIELDS:
            raise AttachmentError(f"{name}.{key}", "is not a known field", "unknown_field")
    filename = _filename(item.get("filename"), f"{name}.filename")
    data, size = _content(item.get("content"), f"{name}.content")
    given_type = item.get("content_type")
    content_type = (
        guess_type(filename)
        if given_type is None
        else _content_type(given_type, f"{name}.content_type")
    )
    content_id = item.get("content_id")
    if content_id is not None:
        content_id = _content_id(content_id, f"{name}.content_id")
    return Attachment(
        filename=filename, content_type=content_type, data=data, size=size, content_id=content_id
    )


def _filename(value: Any, name: str) -> str:
    if value is None:
        raise AttachmentError(name, "is required", "required")
    if not isinstance(value, str):
        raise AttachmentError(name, "must be a string", "invalid_type")
    if not value.strip() or len(value) > MAX_FILENAME:
        raise AttachmentError(name, f"must be 1-{MAX_FILENAME} characters", "invalid_filename")
    if _BAD_NAME.search(value) or value in (".", ".."):
        raise AttachmentError(
            name, "must not hold control characters or path separators", "invalid_filename"
        )
    extension = value.rpartition(".")[2].lower() if "." in value else ""
    if extension in REFUSED_EXTENSIONS:
        raise AttachmentError(
            name,
            f"files of type .{extension} are refused (SES's unsupported attachment types)",
            "unsupported_attachment_type",
        )
    return value


def _content(value: Any, name: str) -> tuple[str, int]:
    """Canonical base64 (no line breaks) and the decoded size."""
    if value is None:
        raise AttachmentError(name, "is required", "required")
    if not isinstance(value, str) or not value.isascii():
        raise AttachmentError(name, "must be a base64 string", "invalid_base64")
    raw = value.encode("ascii")
    try:
        decoded = binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error:
        # Line-wrapped base64 (as MIME writes it) is fine; anything else is not.
        raw = _WHITESPACE.sub(b"", raw)
        try:
            decoded = binascii.a2b_base64(raw, strict_mode=True)
        except binascii.Error:
            raise AttachmentError(name, "is not valid base64", "invalid_base64") from None
    return raw.decode("ascii"), len(decoded)


def _content_type(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_CONTENT_TYPE:
        raise AttachmentError(
            name, "must be a MIME type such as application/pdf", "invalid_content_type"
        )
    match = _CONTENT_TYPE.fullmatch(value)
    if match is None:
        raise AttachmentError(
            name, "must be a MIME type such as application/pdf", "invalid_content_type"
        )
    if match.group(1).lower() in ("multipart", "message"):
        raise AttachmentError(
            name, "multipart and message types are not attachments", "invalid_content_type"
        )
    return value.lower()


def _content_id(value: Any, name: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_CONTENT_ID
        or not _CONTENT_ID.fullmatch(value)
    ):
        raise AttachmentError(
            name,
            f"must be 1-{MAX_CONTENT_ID} letters, digits or '.@_-' (and the other atext "
            "characters), without angle brackets",
            "invalid_content_id",
        )
    return value
