"""Rendering an envelope as an RFC 5322 / MIME message, as the bytes a provider sends.

``render`` writes the common message directly: ASCII headers that fit on one line each
(address lists folded one mailbox a line), bodies in 7bit when ASCII, quoted-printable
otherwise. Anything it cannot write that simply (a non-ASCII display name or subject, a
header past 78 characters, names that need quoting rules beyond a quoted string) goes through
``build_message``, the stdlib's ``email`` package with policy SMTP, which encodes per
RFC 2047 and folds. The stdlib path costs about 80 times the CPU of the direct one (530 µs
against 7 µs for a plain email), and rendering was half of a sender's CPU.
Both paths yield the same headers and content once parsed (tests/sender/test_mime.py).
"""

import binascii
import dataclasses
import re
import secrets
import time
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from mailpool.addresses import Mailbox
from mailpool.envelope import Email, Envelope

#: RFC 5322 recommends lines of at most 78 characters; longer headers take the stdlib path.
MAX_HEADER_LINE = 78
#: RFC 5322's hard limit for a line; a 7bit body may not exceed it.
MAX_LINE = 998
# A display name written as is: atext and spaces (RFC 5322 phrase), no leading/trailing space.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# A display name a quoted string can carry: printable ASCII.
_QUOTABLE_NAME = re.compile(r"[ -~]*")
_PRINTABLE = re.compile(r"[ -~]*")
# 7bit: non-ASCII bodies go quoted-printable or base64, so no relay needs 8BITMIME.
SMTP_7BIT = SMTP.clone(cte_type="7bit")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _NeedsStdlib(Exception):
    """This message needs RFC 2047 encoding or folding: render it with the stdlib."""


def render(envelope: Envelope, message_id_domain: str | None = None) -> bytes:
    """The message's bytes (CRLF line endings, ASCII); ``Message-ID`` is ``<id@domain>``."""
    try:
        return _render_fast(envelope, message_id_domain)
    except _NeedsStdlib:
        return _render_stdlib(envelope, message_id_domain)


def _render_fast(envelope: Envelope, message_id_domain: str | None) -> bytes:
    email = envelope.email
    lines = [_header("From", _mailbox(email.sender))]
    for name, mailboxes in (("To", email.to), ("Cc", email.cc), ("Reply-To", email.reply_to)):
        if mailboxes:
            lines.append(_address_list(name, mailboxes))
    lines.append(_header("Subject", email.subject))
    lines.append(f"Date: {_date(envelope.accepted_at)}")
    domain = message_id_domain or email.sender.domain
    lines.append(_header("Message-ID", f"<{envelope.id}@{domain}>"))
    for name, value in email.headers.items():
        lines.append(_header(name, value))
    head = "\r\n".join(lines)
    return (head + "\r\n").encode("ascii") + _body(email)


def _header(name: str, value: str) -> str:
    line = f"{name}: {value}" if value else f"{name}:"
    # A long value with no space to fold at (a List-Unsubscribe URL) is written whole: RFC
    # 5322 allows lines up to 998 characters, and folding could only encode it.
    unbreakable = " " not in value and len(line) <= MAX_LINE
    if (len(line) > MAX_HEADER_LINE and not unbreakable) or not _written_as_is(value):
        raise _NeedsStdlib
    return line


def _written_as_is(text: str) -> bool:
    """Printable ASCII that a reader gets back unchanged: no encoded-word look-alike, and no
    leading, trailing or doubled spaces (unfolding would not keep them)."""
    return (
        _PRINTABLE.fullmatch(text) is not None
        and "=?" not in text
        and text == text.strip()
        and "  " not in text
    )


def _mailbox(mailbox: Mailbox) -> str:
    name = mailbox.name
    if not name:
        return mailbox.addr
    if _PLAIN_NAME.fullmatch(name):
        return f"{name} <{mailbox.addr}>"
    if _QUOTABLE_NAME.fullmatch(name) and _written_as_is(name):
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{mailbox.addr}>'
    raise _NeedsStdlib


def _address_list(name: str, mailboxes: tuple[Mailbox, ...]) -> str:
    """``Name: a, b`` on one line when it fits, else folded after each comma."""
    written = [_mailbox(m) for m in mailboxes]
    one_line = f"{name}: {', '.join(written)}"
    if len(one_line) <= MAX_HEADER_LINE:
        return one_line
    if any(len(w) + 2 > MAX_HEADER_LINE for w in written) or len(name) + 3 + len(written[0]) > 78:
        raise _NeedsStdlib
    return f"{name}: " + ",\r\n ".join(written)


def _date(epoch: float) -> str:
    """RFC 5322 date in UTC, as the stdlib writes it for an aware UTC datetime."""
    t = time.gmtime(epoch)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _body(email: Email) -> bytes:
    """MIME headers, a blank line and the body: one text part or multipart/alternative."""
    if email.text is not None and email.html is not None:
        parts = [_part("plain", email.text), _part("html", email.html)]
        boundary = _boundary(parts)
        # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1), not the part.
        joined = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
        return (
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n'
            + joined + b"--" + boundary + b"--\r\n"
        )  # fmt: skip
    if email.text is not None:
        return b"MIME-Version: 1.0\r\n" + _part("plain", email.text)
    if email.html is not None:
        return b"MIME-Version: 1.0\r\n" + _part("html", email.html)
    return b"MIME-Version: 1.0\r\n\r\n"


def _part(subtype: str, text: str) -> bytes:
    """Content headers, a blank line and the text: 7bit if ASCII, else quoted-printable."""
    lines = _LINE_BREAKS.split(text)
    if lines[-1] == "":
        lines.pop()
    if text.isascii() and all(len(line) <= MAX_LINE for line in lines):
        encoding, payload = "7bit", "\r\n".join(lines).encode("ascii") + b"\r\n"
    else:
        encoding = "quoted-printable"
        qp = binascii.b2a_qp("\n".join(lines).encode("utf-8") + b"\n", istext=True)
        payload = qp.replace(b"\n", b"\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    ).encode("ascii") + payload


def _boundary(parts: list[bytes]) -> bytes:
    while True:
        boundary = b"===============" + secrets.token_hex(16).encode("ascii") + b"=="
        if not any(boundary in part for part in parts):
            return boundary


def _unbreakable(name: str, value: str) -> bool:
    """A header past 78 characters with no space to fold at (a List-Unsubscribe URL)."""
    line = len(name) + 2 + len(value)
    return MAX_HEADER_LINE < line <= MAX_LINE and " " not in value and _written_as_is(value)


def _render_stdlib(envelope: Envelope, message_id_domain: str | None) -> bytes:
    """``build_message``'s bytes, with unbreakable headers written whole as ``render``
    writes them (the stdlib would RFC 2047-encode them, which List-Unsubscribe readers do
    not undo)."""
    headers = envelope.email.headers
    whole = {n: v for n, v in headers.items() if _unbreakable(n, v)}
    if not whole:
        return build_message(envelope, message_id_domain).as_bytes()
    rest = {n: v for n, v in headers.items() if n not in whole}
    email = dataclasses.replace(envelope.email, headers=rest)
    raw = build_message(dataclasses.replace(envelope, email=email), message_id_domain).as_bytes()
    head, blank, body = raw.partition(b"\r\n\r\n")
    lines = b"".join(f"\r\n{n}: {v}".encode("ascii") for n, v in whole.items())
    return head + lines + blank + body


def _address(mailbox: Mailbox) -> Address:
    return Address(display_name=mailbox.name, addr_spec=mailbox.addr)


def build_message(envelope: Envelope, message_id_domain: str | None = None) -> EmailMessage:
    """The message through the stdlib's ``email`` package; ``render`` uses it when needed.

    Headers are encoded per RFC 2047 where they hold non-ASCII text (policy SMTP, CRLF), and
    non-ASCII bodies are quoted-printable or base64, so the message is ASCII.
    Both text and html give multipart/alternative; Bcc never appears in the headers.
    """
    email = envelope.email
    message = EmailMessage(policy=SMTP_7BIT)
    message["From"] = _address(email.sender)
    if email.to:
        message["To"] = [_address(m) for m in email.to]
    if email.cc:
        message["Cc"] = [_address(m) for m in email.cc]
    if email.reply_to:
        message["Reply-To"] = [_address(m) for m in email.reply_to]
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.fromtimestamp(envelope.accepted_at, UTC))
    domain = message_id_domain or email.sender.domain
    message["Message-ID"] = f"<{envelope.id}@{domain}>"
    for name, value in email.headers.items():
        message[name] = value
    if email.text is not None:
        message.set_content(email.text)
        if email.html is not None:
            message.add_alternative(email.html, subtype="html")
    elif email.html is not None:
        message.set_content(email.html, subtype="html")
    return message
