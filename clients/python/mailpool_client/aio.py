"""The asyncio client: ``async with AsyncClient(url, api_key=...) as mail: await mail.send(...)``.

Retries done right: every logical send gets an ``Idempotency-Key`` (yours, or one made for
it) that each retry reuses, so an email whose first answer was lost (a dropped connection, a
``503 in_doubt``) is never enqueued twice. Retried: connection failures, timeouts, 429 and
503, after the ``Retry-After`` the API gave (else a jittered exponential backoff), within the
caller's time budget; never a 4xx the same request would get again.
"""

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from mailpool_client.errors import (
    ApiError,
    ConnectionFailed,
    MailpoolError,
    RetriesExhausted,
    from_answer,
)
from mailpool_client.models import Email, Sent, Status, Suppression

T = TypeVar("T")
#: The API takes at most this many emails in one batch request.
BATCH_LIMIT = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class Retry:
    """How long to keep trying (``budget_s``, all tries together) and how to wait between
    tries when the API does not say (exponential from ``base_s`` to ``max_s``, full jitter)."""

    budget_s: float = 30.0
    base_s: float = 0.1
    max_s: float = 5.0

    def pause(self, tries: int, error: MailpoolError) -> float:
        """Seconds to wait before the next try, after ``tries`` failed ones."""
        told = error.retry_after if isinstance(error, ApiError) else None
        if told is not None:
            return told + random.uniform(0, self.base_s)
        return random.uniform(0, min(self.max_s, self.base_s * 2 ** (tries - 1)))


def retriable(error: MailpoolError) -> bool:
    """Whether the same request may succeed later."""
    return bool(getattr(error, "retriable", False))


class AsyncClient:
    """mailpool's HTTP API over one aiohttp session (kept-alive connections)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retry: Retry | None = None,
        max_connections: int = 100,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or Retry()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                headers=self._headers,
            )
        return self._http

    # One exchange, and retries -----------------------------------------------------------

    async def _exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        batch: bool = False,
    ) -> tuple[int, Any, str | None]:
        """(status, JSON body, Retry-After) of a 2xx answer (or, for a ``batch``, of any
        answer carrying per-entry results); the typed error of any other."""
        try:
            async with self._session().request(
                method, self.url + path, json=body, headers=headers
            ) as answer:
                doc = await answer.json(content_type=None) if answer.status != 204 else None
                retry_after = answer.headers.get("Retry-After")
                if answer.status >= 400 and not (
                    batch and isinstance(doc, dict) and "results" in doc
                ):
                    raise from_answer(answer.status, doc, retry_after)
                return answer.status, doc, retry_after
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # ValueError: an answer that is not JSON (a proxy's error page, a cut body).
            raise ConnectionFailed(f"{method} {path}: {type(exc).__name__}") from exc

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry.budget_s
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except MailpoolError as exc:
                if not retriable(exc):
                    raise
                pause = self.retry.pause(tries, exc)
                if time.monotonic() + pause >= deadline:
                    raise RetriesExhausted(exc, tries) from exc
                await asyncio.sleep(pause)

    # Sending ---------------------------------------------------------------------------------

    async def send(self, email: Email) -> Sent:
        """Send one email; its id once SQS has it (retried under one Idempotency-Key)."""
        key = email.idempotency_key or uuid.uuid4().hex
        doc = email.to_json()

        async def attempt() -> Sent:
            _, answer, _ = await self._exchange("POST", "/v1/emails", doc, {"Idempotency-Key": key})
            return Sent(str(answer["id"]), key)

        return await self._retrying(attempt)

    async def send_batch(
        self, emails: Sequence[Email], *, concurrency: int = 4
    ) -> list[Sent | ApiError]:
        """Send any number of emails, in requests of up to 500 sent ``concurrency`` at a time;
        per email, in input order, its ``Sent`` or the error that refused it. (Emails of one
        group in one call keep their order only within a request of 500: use ``send_ordered``
        when order matters across more.)"""
        chunks = [emails[i : i + BATCH_LIMIT] for i in range(0, len(emails), BATCH_LIMIT)]
        slots = asyncio.Semaphore(concurrency)

        async def one(chunk: Sequence[Email]) -> list[Sent | ApiError]:
            async with slots:
                return await self._send_chunk(chunk)

        results = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return [result for chunk in results for result in chunk]

    async def _send_chunk(self, emails: Sequence[Email]) -> list[Sent | ApiError]:
        """One batch request; while some entries are refused retriably (or no answer came),
        the same request goes again under the same key: the API keys entry i as
        ``<key>:<i>``, so the entries it already took come back with their ids, not twice."""
        key = uuid.uuid4().hex
        docs = [e.to_json() for e in emails]
        deadline = time.monotonic() + self.retry.budget_s
        results: list[Sent | ApiError] = []
        tries = 0
        while True:
            tries += 1
            failure: MailpoolError | None = None
            try:
                _, doc, after = await self._exchange(
                    "POST", "/v1/emails/batch", docs, {"Idempotency-Key": key}, batch=True
                )
                results = [_entry(e, f"{key}:{i}", after) for i, e in enumerate(doc["results"])]
                failure = next(
                    (r for r in results if isinstance(r, ApiError) and r.retriable), None
                )
            except MailpoolError as exc:
                if not retriable(exc):
                    raise
                failure = exc
            if failure is None:
                return results
            pause = self.retry.pause(tries, failure)
            if time.monotonic() + pause >= deadline:
                if results:
                    return results
                raise RetriesExhausted(failure, tries) from failure
            await asyncio.sleep(pause)

    async def send_ordered(
        self, emails: Iterable[Email], *, groups_at_once: int = 64
    ) -> list[Sent]:
        """Send emails so that each group's arrive in order: one email of a group after the
        previous one's 202, many groups at once. Results in input order."""
        listed = list(emails)
        by_group: dict[str, list[int]] = {}
        for index, email in enumerate(listed):
            by_group.setdefault(email.group or f"\0{index}", []).append(index)
        results: list[Sent | None] = [None] * len(listed)
        slots = asyncio.Semaphore(groups_at_once)

        async def group(indexes: list[int]) -> None:
            async with slots:
                for index in indexes:
                    results[index] = await self.send(listed[index])

        await asyncio.gather(*(group(indexes) for indexes in by_group.values()))
        return [r for r in results if r is not None]

    # Reading ---------------------------------------------------------------------------------

    async def get(self, email_id: str) -> Status:
        """What became of an email."""
        _, doc, _ = await self._retrying(lambda: self._exchange("GET", f"/v1/emails/{email_id}"))
        return Status.from_json(doc)

    async def wait(
        self,
        email_id: str,
        *,
        until: Iterable[str] | None = None,
        timeout_s: float = 60.0,
        every_s: float = 0.25,
    ) -> Status:
        """Poll an email's status until its state is one of ``until`` (default: a terminal
        state); TimeoutError when it is not by ``timeout_s``."""
        wanted = set(until) if until is not None else None
        deadline = time.monotonic() + timeout_s
        while True:
            status = await self.get(email_id)
            if (status.state in wanted) if wanted is not None else status.terminal:
                return status
            if time.monotonic() + every_s > deadline:
                raise TimeoutError(f"{email_id} is still {status.state}")
            await asyncio.sleep(every_s)

    # Suppressions ----------------------------------------------------------------------------

    async def suppressions(
        self, *, limit: int = 100, list_name: str | None = None
    ) -> list[Suppression]:
        """The whole suppression list (or one mailing list's unsubscribes), page by page."""
        found: list[Suppression] = []
        after: str | None = None
        while True:
            query = f"?limit={limit}" + (f"&after={quote(after)}" if after else "")
            query += f"&list={quote(list_name)}" if list_name else ""
            _, doc, _ = await self._retrying(self._getter(f"/v1/suppressions{query}"))
            found += [Suppression.from_doc(entry) for entry in doc["data"]]
            after = doc.get("next")
            if not after:
                return found

    def _getter(self, path: str) -> Callable[[], Awaitable[tuple[int, Any, str | None]]]:
        return lambda: self._exchange("GET", path)

    async def suppress(self, address: str) -> None:
        """Suppress ``address`` by hand."""
        await self._retrying(lambda: self._exchange("PUT", f"/v1/suppressions/{quote(address)}"))

    async def unsuppress(self, address: str) -> None:
        """Mail ``address`` again."""
        await self._retrying(lambda: self._exchange("DELETE", f"/v1/suppressions/{quote(address)}"))


def _entry(entry: dict[str, Any], key: str, retry_after: str | None) -> Sent | ApiError:
    if "id" in entry:
        return Sent(str(entry["id"]), key)
    error = entry.get("error") or {}
    return from_answer(int(error.get("status") or 422), entry, retry_after)
