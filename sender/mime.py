"""Rendering an envelope as an RFC 5322 / MIME message."""

from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from mailpool.addresses import Mailbox
from mailpool.envelope import Envelope


def _address(mailbox: Mailbox) -> Address:
    return Address(display_name=mailbox.name, addr_spec=mailbox.addr)


def build_message(envelope: Envelope, message_id_domain: str | None = None) -> EmailMessage:
    """The message to hand to a provider; ``Message-ID`` is ``<id@domain>``.

    Headers are encoded per RFC 2047 where they hold non-ASCII text (policy SMTP, CRLF).
    Both text and html give multipart/alternative; Bcc never appears in the headers.
    """
    email = envelope.email
    message = EmailMessage(policy=SMTP)
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
