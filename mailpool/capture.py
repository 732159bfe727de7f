"""An SMTP capture server (aiosmtpd) that stores every message it accepts in a Maildir."""

import asyncio
import mailbox
import pathlib
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from core.runtime import cannot_listen


class MaildirHandler:
    """aiosmtpd handler: each DATA becomes one file in ``<path>/new``."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._maildir = mailbox.Maildir(path, create=True)
        self.count = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        data = content if isinstance(content, bytes) else str(content).encode()
        await asyncio.to_thread(self._maildir.add, data)
        self.count += 1
        return "250 OK"


class CaptureServer:
    """Runs an SMTP server on this event loop; ``port`` 0 picks a free one."""

    def __init__(self, handler: Any, host: str = "127.0.0.1", port: int = 2525) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    def session(self) -> SMTP:
        """The protocol object serving one SMTP connection."""
        return SMTP(self.handler, hostname="mailpool.capture", enable_SMTPUTF8=True)

    async def __aenter__(self) -> "CaptureServer":
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self.session, self.host, self.port)
        except OSError as exc:
            raise cannot_listen(self.host, self.port, "--smtp-port", exc) from None
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
