"""SMTP delivery over aiosmtplib with a bounded pool of persistent connections.

aiosmtplib makes the connection (TLS, AUTH, EHLO); the mail transaction is written here
with its public ``execute_command`` and ``data``, because ``sendmail`` re-parses every
address with ``email.utils.parseaddr`` twice and normalises the message twice — about a
sixth of an SMTP send's CPU (103 vs 123 µs a send; benchmarks/RESULTS.md, "Issue 22
again"). Addresses reach this module already strict (``core.addresses``: dot-atom local
parts, ASCII domains), and ``render`` writes CRLF-terminated ASCII, so neither step has
anything left to do; a property test holds what the relay receives to ``sendmail``'s
(``tests/sender/test_smtp_transaction.py``).
"""

import asyncio
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from core.envelope import Envelope
from core.events import enhanced_code
from core.settings import SettingError, env_bool, env_float, env_int, env_opt, env_str
from sender.mime import render
from sender.providers.base import (
    Accepted,
    DelayError,
    PermanentError,
    TransientError,
    refusals,
)

log = logging.getLogger(__name__)

TlsMode = Literal["none", "starttls", "tls"]
#: Replies that mean "slow down" rather than "this failed": 421 (service busy, e.g. rate
#: limits) and 454 (SES over SMTP: "Throttling failure: Maximum sending rate exceeded").
THROTTLE_CODES = frozenset({421, 454})
#: What may stand between ``<`` and ``>`` in MAIL FROM and RCPT TO: printable ASCII but
#: space, the angle brackets and the quote.
_SAFE_ADDRESS = re.compile(r"[!#-;=?-~]+@[!#-;=?-~]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class SmtpConfig:
    """Where the SMTP relay is and how to talk to it."""

    host: str = "127.0.0.1"
    port: int = 2525
    tls: TlsMode = "none"
    validate_certs: bool = True
    username: str | None = None
    password: str | None = None
    timeout_s: float = 30.0
    #: Connections kept open at most (sends beyond it wait for a free one).
    pool_size: int = 16
    #: A connection idle this long is checked with NOOP before it is used again.
    idle_check_s: float = 10.0
    message_id_domain: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "SmtpConfig":
        """Read MAILPOOL_SMTP_*."""
        d = cls()
        tls = env_str(environ, "MAILPOOL_SMTP_TLS", d.tls)
        if tls not in ("none", "starttls", "tls"):
            raise SettingError(f"MAILPOOL_SMTP_TLS must be none, starttls or tls, got {tls!r}")
        return cls(
            host=env_str(environ, "MAILPOOL_SMTP_HOST", d.host),
            port=env_int(environ, "MAILPOOL_SMTP_PORT", d.port),
            tls=tls,  # type: ignore[arg-type]
            validate_certs=env_bool(environ, "MAILPOOL_SMTP_VALIDATE_CERTS", d.validate_certs),
            username=env_opt(environ, "MAILPOOL_SMTP_USERNAME"),
            password=env_opt(environ, "MAILPOOL_SMTP_PASSWORD"),
            timeout_s=env_float(environ, "MAILPOOL_SMTP_TIMEOUT", d.timeout_s),
            pool_size=env_int(environ, "MAILPOOL_SMTP_POOL_SIZE", d.pool_size),
            message_id_domain=env_opt(environ, "MAILPOOL_MESSAGE_ID_DOMAIN"),
        )


@dataclass(slots=True, eq=False)
class _Connection:
    client: aiosmtplib.SMTP
    last_used: float


def _classify(exc: Exception, recipients: Sequence[str]) -> TransientError | PermanentError:
    """SMTP outcome → retry later or give up; reasons carry codes only, never addresses."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            replies = {r.recipient: (r.code, enhanced_code(r.message)) for r in exc.recipients}
            return PermanentError(
                f"smtp_{min(codes)}_all_recipients", refusals(recipients, replies)
            )
        if codes and all(c in THROTTLE_CODES for c in codes):
            return DelayError(f"smtp_{min(codes)}_recipients")
        return TransientError(f"smtp_{min(codes) if codes else 0}_recipients")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 500 <= exc.code < 600:
            return PermanentError(f"smtp_{exc.code}")
        if exc.code in THROTTLE_CODES:
            return DelayError(f"smtp_{exc.code}")
        return TransientError(f"smtp_{exc.code}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientError("smtp_timeout")
    return TransientError(f"smtp_{type(exc).__name__}")


async def transaction(
    client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str], message: bytes
) -> dict[str, aiosmtplib.SMTPResponse]:
    """One mail transaction (MAIL, RCPT each, DATA) on a connection past EHLO; the
    recipients refused, as ``sendmail`` answers them. Raises as ``sendmail`` does:
    SMTPSenderRefused, SMTPRecipientsRefused when every recipient is refused,
    SMTPDataError. The caller discards the connection after any error (no RSET)."""
    mailbox = _mailbox(sender)  # every address checked before anything is sent
    mailboxes = [_mailbox(recipient) for recipient in recipients]
    options = [b"SIZE=%d" % len(message)] if client.supports_extension("size") else []
    reply = await client.execute_command(b"MAIL", b"FROM:<%s>" % mailbox, *options)
    if reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
    refused: dict[str, aiosmtplib.SMTPResponse] = {}
    for recipient, to in zip(recipients, mailboxes, strict=True):
        reply = await client.execute_command(b"RCPT", b"TO:<%s>" % to)
        if reply.code not in (250, 251):
            refused[recipient] = reply
    if len(refused) == len(recipients):
        raise aiosmtplib.SMTPRecipientsRefused(
            [aiosmtplib.SMTPRecipientRefused(r.code, r.message, a) for a, r in refused.items()]
        )
    await client.data(message)
    return refused


def _mailbox(address: str) -> bytes:
    """``address`` for a command line; refused for good if it could break out of it
    (none can after ``core.addresses``: this is the command line's own guard)."""
    if not _SAFE_ADDRESS.fullmatch(address):
        raise PermanentError("smtp_unsafe_address")
    return address.encode("ascii")


class SmtpProvider:
    """Delivers envelopes to one SMTP relay over at most ``pool_size`` connections."""

    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._slots = asyncio.Semaphore(config.pool_size)
        self._idle: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        cfg = self._config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.tls == "tls",
            start_tls=cfg.tls == "starttls",
            validate_certs=cfg.validate_certs,
            username=cfg.username,
            password=cfg.password,
            timeout=cfg.timeout_s,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        return _Connection(client, time.monotonic())

    async def _checkout(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.client.is_connected:
                continue
            if time.monotonic() - conn.last_used < self._config.idle_check_s:
                return conn
            try:
                await conn.client.noop()
            except (aiosmtplib.SMTPException, OSError):
                self._discard(conn)
                continue
            return conn
        return await self._connect()

    @staticmethod
    def _discard(conn: _Connection) -> None:
        try:
            conn.client.close()
        except Exception:
            log.debug("closing a broken SMTP connection failed")

    async def send(self, envelope: Envelope) -> Accepted:
        """Deliver one envelope to every recipient in a single SMTP transaction."""
        if self._closed:
            raise TransientError("smtp_closed")
        message = render(envelope, self._config.message_id_domain)
        async with self._slots:
            conn: _Connection | None = None
            try:
                conn = await self._checkout()
                refused = await transaction(
                    conn.client, envelope.email.sender.addr, envelope.email.deliver_to, message
                )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                if conn is not None:
                    self._discard(conn)
                raise _classify(exc, envelope.email.recipients) from None
            except BaseException:
                # Cancelled mid-transaction: the connection's state is unknown.
                if conn is not None:
                    self._discard(conn)
                raise
            conn.last_used = time.monotonic()
            self._idle.append(conn)
        # Some recipients accepted, some refused: retrying would send the accepted ones a
        # second copy, so the message counts as sent; the refused ones are reported.
        replies = {address: (r.code, enhanced_code(r.message)) for address, r in refused.items()}
        return Accepted(refusals(envelope.email.recipients, replies))

    async def aclose(self) -> None:
        """Say QUIT on every idle connection."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                await conn.client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self._discard(conn)
