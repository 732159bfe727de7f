"""The blocking client: the asyncio client run on an event loop of its own, in a thread the
client owns, so a plain script or a WSGI app gets the same retries and kept connections."""

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any, TypeVar

from mailpool_client.aio import AsyncClient, Retry
from mailpool_client.errors import ApiError
from mailpool_client.models import Email, Sent, Status, Suppression

T = TypeVar("T")


class Client:
    """``with Client(url, api_key=...) as mail: mail.send(Email(...))``; thread-safe."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retry: Retry | None = None,
        max_connections: int = 100,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="mailpool-client", daemon=True
        )
        self._thread.start()
        self._async = AsyncClient(
            url,
            api_key=api_key,
            timeout_s=timeout_s,
            retry=retry,
            max_connections=max_connections,
        )

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def close(self) -> None:
        """Close the connections and stop the client's thread."""
        if self._loop.is_closed():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def send(self, email: Email) -> Sent:
        """Send one email (see ``AsyncClient.send``)."""
        return self._run(self._async.send(email))

    def send_batch(self, emails: Sequence[Email], *, concurrency: int = 4) -> list[Sent | ApiError]:
        """Send any number of emails (see ``AsyncClient.send_batch``)."""
        return self._run(self._async.send_batch(emails, concurrency=concurrency))

    def send_ordered(self, emails: Iterable[Email], *, groups_at_once: int = 64) -> list[Sent]:
        """Send keeping each group's order (see ``AsyncClient.send_ordered``)."""
        return self._run(self._async.send_ordered(emails, groups_at_once=groups_at_once))

    def get(self, email_id: str) -> Status:
        """What became of an email."""
        return self._run(self._async.get(email_id))

    def wait(
        self, email_id: str, *, until: Iterable[str] | None = None, timeout_s: float = 60.0
    ) -> Status:
        """Poll until a terminal state (or one of ``until``)."""
        return self._run(self._async.wait(email_id, until=until, timeout_s=timeout_s))

    def suppressions(self) -> list[Suppression]:
        """The whole suppression list."""
        return self._run(self._async.suppressions())

    def suppress(self, address: str) -> None:
        """Suppress ``address`` by hand."""
        self._run(self._async.suppress(address))

    def unsuppress(self, address: str) -> None:
        """Mail ``address`` again."""
        self._run(self._async.unsuppress(address))
