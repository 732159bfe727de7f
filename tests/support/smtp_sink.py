"""A loopback SMTP server (aiosmtpd) that records what it receives and fails on command."""

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailpool.capture import CaptureServer


@dataclass
class Delivery:
    """One accepted DATA: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    #: The MAIL command's parameters (``SIZE=…``).
    mail_options: list[str] = field(default_factory=list)

    @property
    def mailpool_id(self) -> str:
        """The mailpool id inside the Message-ID header."""
        return str(self.message["Message-ID"]).strip("<>").split("@")[0]


@dataclass
class SinkHandler:
    """aiosmtpd handler with switches for the failures a relay can answer with."""

    deliveries: list[Delivery] = field(default_factory=list)
    #: Reply to the next N DATA commands with ``data_reply`` instead of accepting.
    data_failures: int = 0
    data_reply: str = "451 4.3.0 try again later"
    #: Recipients answered with the given reply at RCPT.
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    #: Reply to MAIL FROM with this instead of accepting the sender.
    mail_reply: str | None = None
    #: Seconds to wait before answering DATA.
    delay_s: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.rcpt_replies.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.data_failures > 0:
            self.data_failures -= 1
            return self.data_reply
        raw = envelope.original_content or b""
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.deliveries.append(
            Delivery(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                raw,
                message,
                list(envelope.mail_options),
            )
        )
        self.arrived.set()
        return "250 OK"


class SmtpSink(CaptureServer):
    """The capture server with a recording, failure-injecting handler."""

    handler: SinkHandler

    def __init__(self) -> None:
        super().__init__(SinkHandler(), port=0)
        self._transports: set[asyncio.BaseTransport] = set()

    def session(self) -> SMTP:
        """A session whose connection is remembered, so ``go_down`` can cut it."""
        session = super().session()
        original = session.connection_made

        def track(transport: asyncio.BaseTransport) -> None:
            self._transports.add(transport)
            original(transport)

        session.connection_made = track  # type: ignore[method-assign]
        return session

    async def go_down(self) -> None:
        """Stop listening and drop every open session (the relay is down)."""
        await self.__aexit__()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def come_back(self) -> None:
        """Listen again on the same port."""
        await self.__aenter__()

    @property
    def deliveries(self) -> list[Delivery]:
        """Everything accepted so far, in arrival order."""
        return self.handler.deliveries

    async def wait_for(self, count: int, within: float = 20.0) -> list[Delivery]:
        """Wait until at least ``count`` messages arrived."""
        async with asyncio.timeout(within):
            while len(self.handler.deliveries) < count:
                self.handler.arrived.clear()
                await self.handler.arrived.wait()
        return self.deliveries
