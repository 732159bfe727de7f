"""One delivery attempt: open the envelope, send it, and say what came of it.

The worker receives and settles; this module decides. ``Delivery.attempt`` returns an
``Outcome``: how to settle the queue message (delete it, hide it for a backoff, move it to
the DLQ) and the events that outcome publishes first. Every accepted email ends in exactly
one terminal event: ``email.sent`` (some recipient accepted; refused ones get their own
``email.bounced``), ``email.bounced`` (every recipient refused) or ``email.failed`` — also
when its receives run out: the last attempt is settled here (``retries_exhausted``) rather
than left to SQS's redrive, which would move it silently.
"""

import asyncio
import dataclasses
import enum
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from aws.errors import AwsError, Misconfigured
from core import events as ev
from core.backoff import backoff
from core.envelope import Envelope, EnvelopeError
from core.events import Event, Recipient
from core.sealing import Keyring
from metrics.sender import SenderMetrics
from pool.blobs import BlobMissing
from pool.messages import Received
from sender.budget import ByteBudget
from sender.config import SenderConfig
from sender.providers.base import (
    Accepted,
    DelayError,
    PermanentError,
    Provider,
    Refusal,
    TransientError,
)
from state.suppressions import Suppressions

log = logging.getLogger(__name__)

MAX_VISIBILITY_S = 43_200


class Settle(enum.Enum):
    """What the worker does with the queue message."""

    DELETE = "delivered"
    RETRY = "retried"
    DEAD_LETTER = "dead_lettered"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: how to settle its message, and the events to publish."""

    settle: Settle
    #: The mailpool id (the SQS message id when the body is not an envelope).
    email_id: str
    #: A short code, safe to log ("smtp_451", "retries_exhausted", …).
    reason: str = ""
    events: tuple[Event, ...] = ()
    #: RETRY: seconds to hide the message.
    delay_s: int = 0
    envelope: Envelope | None = None


class _Unreadable(Exception):
    """A message whose envelope cannot be read now (transient) or ever."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def retry_delay(config: SenderConfig, receive_count: int) -> int:
    """Seconds to hide a message after its ``receive_count``-th failed attempt (jittered)."""
    seconds = backoff(receive_count - 1, config.backoff_s, config.max_backoff_s)
    return min(MAX_VISIBILITY_S, round(seconds))


class Delivery:
    """Turns a received message into an ``Outcome`` through ``provider``."""

    def __init__(
        self,
        config: SenderConfig,
        provider: Provider,
        metrics: SenderMetrics,
        *,
        max_receives: int,
        stopping: Callable[[], bool],
        keyring: Keyring | None = None,
        body: Callable[[Received], Awaitable[str | bytes]],
        suppressions: Suppressions | None = None,
    ) -> None:
        self._config = config
        self._suppressions = suppressions
        self._provider = provider
        self._metrics = metrics
        self._max_receives = max_receives
        self._stopping = stopping
        self._keyring = keyring
        self._body = body
        self._large = ByteBudget(config.large_bytes)

    async def attempt(self, message: Received) -> Outcome:
        """Deliver ``message`` once; never raises for the message's own trouble. A body
        carried through S3 waits for room in the sender's byte budget first."""
        if message.blob is None:
            return await self._attempt(message)
        async with self._large.hold(message.blob.size):
            return await self._attempt(message)

    async def _attempt(self, message: Received) -> Outcome:
        try:
            envelope = await self._open(message)
        except _Unreadable as exc:
            return self._unreadable(message, exc)
        suppressed: Event | None = None
        if self._suppressions is not None:
            try:
                envelope, suppressed = await self._drop_suppressed(message, envelope)
            except AwsError:
                return self._retry(message, envelope, "state_unavailable")
            if suppressed is not None and suppressed.terminal:  # nobody left to send to
                return Outcome(
                    Settle.DELETE, envelope.id, "suppressed", (suppressed,), envelope=envelope
                )
        outcome = await self._send(message, envelope)
        if suppressed is not None:
            outcome = dataclasses.replace(outcome, events=(suppressed, *outcome.events))
        return outcome

    async def _drop_suppressed(
        self, message: Received, envelope: Envelope
    ) -> tuple[Envelope, Event | None]:
        """The envelope without its suppressed recipients, and their ``email.suppressed``
        event (terminal when none is left); AwsError when the list cannot be read."""
        assert self._suppressions is not None
        addresses = envelope.email.recipients
        scope = envelope.scope or "default"
        listed = await self._suppressions.suppressed(scope, addresses, envelope.mailing_list)
        if not listed:
            return envelope, None
        skip = frozenset(p for p, a in enumerate(addresses) if a in listed)
        event = self._event(
            ev.SUPPRESSED,
            message,
            envelope,
            recipients=tuple(Recipient(p, addresses[p]) for p in sorted(skip)),
            reason="suppressed",
            terminal=len(skip) == len(addresses),
        )
        email = dataclasses.replace(envelope.email, skip=skip)
        return dataclasses.replace(envelope, email=email), event

    async def _send(self, message: Received, envelope: Envelope) -> Outcome:
        """Send through the provider once; the outcome."""
        name = self._provider.name
        started = time.perf_counter()
        try:
            accepted = await self._send_through_delays(envelope)
        except TransientError as exc:
            self._metrics.sent(name, "transient", time.perf_counter() - started)
            return self._retry(message, envelope, exc.reason)
        except PermanentError as exc:
            self._metrics.sent(name, "permanent", time.perf_counter() - started)
            return self._refused(message, envelope, exc)
        except Exception as exc:  # a provider bug: retry later, never kill the loop
            self._metrics.sent(name, "error", time.perf_counter() - started)
            log.exception(
                "provider raised unexpectedly",
                extra={"id": envelope.id, "error": type(exc).__name__},
            )
            return self._retry(message, envelope, "provider_error")
        self._metrics.sent(name, "delivered", time.perf_counter() - started)
        return self._sent(message, envelope, accepted)

    def _event(self, kind: str, message: Received, envelope: Envelope, **fields: object) -> Event:
        return Event(
            type=kind,
            email_id=envelope.id,
            attempt=message.receive_count,
            provider=self._provider.name,
            tags=envelope.email.tags,
            scope=envelope.scope,
            stream=envelope.stream or None,
            **fields,  # type: ignore[arg-type]
        )

    def _sent(self, message: Received, envelope: Envelope, accepted: Accepted) -> Outcome:
        addresses = envelope.email.recipients
        left_out = {r.position for r in accepted.refused} | envelope.email.skip
        taken = tuple(Recipient(p, a) for p, a in enumerate(addresses) if p not in left_out)
        published = [self._event(ev.SENT, message, envelope, recipients=taken, terminal=True)]
        if accepted.refused:
            bounced = _bounced(addresses, accepted.refused)
            published.append(self._event(ev.BOUNCED, message, envelope, recipients=bounced))
        return Outcome(Settle.DELETE, envelope.id, "sent", tuple(published), envelope=envelope)

    def _refused(self, message: Received, envelope: Envelope, exc: PermanentError) -> Outcome:
        if exc.refused:  # every recipient refused for good
            bounced = _bounced(envelope.email.recipients, exc.refused)
            event = self._event(
                ev.BOUNCED, message, envelope, recipients=bounced, reason=exc.reason, terminal=True
            )
        else:  # the message itself refused
            event = self._failed(message, envelope, exc.reason)
        return Outcome(Settle.DEAD_LETTER, envelope.id, exc.reason, (event,), envelope=envelope)

    def _failed(self, message: Received, envelope: Envelope, reason: str) -> Event:
        recipients = _live(envelope)
        return self._event(
            ev.FAILED, message, envelope, recipients=recipients, reason=reason, terminal=True
        )

    def _retry(self, message: Received, envelope: Envelope, reason: str) -> Outcome:
        if message.receive_count >= self._max_receives:
            # The last receive: settled here, with its terminal event, not by SQS's redrive.
            failed = self._failed(message, envelope, "retries_exhausted")
            return Outcome(
                Settle.DEAD_LETTER, envelope.id, "retries_exhausted", (failed,), envelope=envelope
            )
        delay = retry_delay(self._config, message.receive_count)
        deferred = self._event(
            ev.DEFERRED,
            message,
            envelope,
            recipients=_live(envelope),
            reason=reason,
            next_attempt_at=time.time() + delay,
        )
        return Outcome(Settle.RETRY, envelope.id, reason, (deferred,), delay, envelope)

    def _unreadable(self, message: Received, exc: _Unreadable) -> Outcome:
        email_id = readable_id(message.body) or message.message_id
        if exc.transient and message.receive_count < self._max_receives:
            delay = retry_delay(self._config, message.receive_count)
            return Outcome(Settle.RETRY, email_id, exc.reason, delay_s=delay)
        reason = exc.reason if not exc.transient else "retries_exhausted"
        if not readable_id(message.body):  # not a mailpool email: no producer to tell
            return Outcome(Settle.DEAD_LETTER, email_id, reason)
        failed = Event(
            type=ev.FAILED,
            email_id=email_id,
            recipients=(),
            attempt=message.receive_count,
            reason=reason,
            terminal=True,
        )
        return Outcome(Settle.DEAD_LETTER, email_id, reason, (failed,))

    async def _open(self, message: Received) -> Envelope:
        """The envelope a message carries, fetched from S3 when the body is a pointer."""
        body: str | bytes = message.body
        if message.blob is not None:
            try:
                body = await self._body(message)
            except BlobMissing:
                raise _Unreadable("blob_missing", transient=False) from None
            except Misconfigured:
                raise _Unreadable("blob_store_unconfigured", transient=True) from None
            except AwsError:
                raise _Unreadable("blob_unavailable", transient=True) from None
        try:
            return Envelope.decode(body, self._keyring)
        except EnvelopeError as exc:
            raise _Unreadable(exc.reason, transient=False) from None

    async def _send_through_delays(self, envelope: Envelope) -> Accepted:
        """Send; while the provider throttles, wait and try again holding the message.

        Throttling is the provider asking to slow down, not a failure of this message: the
        message stays held (its visibility extended), so it spends none of its receives
        toward the DLQ. Past ``delay_budget_s``, or on shutdown, the throttle counts as an
        ordinary transient failure.
        """
        waited = 0.0
        for attempt in itertools.count():
            try:
                return await self._provider.send(envelope)
            except DelayError:
                pause = backoff(attempt, 1.0, 60.0, jitter=0.5)
                if waited + pause > self._config.delay_budget_s or self._stopping():
                    raise
                self._metrics.sent(self._provider.name, "delayed", 0.0)
                waited += pause
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")


def _live(envelope: Envelope) -> tuple[Recipient, ...]:
    """The recipients an attempt concerns: all but the skipped (suppressed) ones."""
    skip = envelope.email.skip
    return tuple(r for r in ev.recipients_of(envelope.email.recipients) if r.position not in skip)


def _bounced(addresses: list[str], refused: tuple[Refusal, ...]) -> tuple[Recipient, ...]:
    return tuple(Recipient(r.position, addresses[r.position], r.code, r.enhanced) for r in refused)


def readable_id(body: str) -> str | None:
    """The mailpool id of a queue body, readable even when the envelope is sealed."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and doc.get("v") == 1 and isinstance(doc.get("id"), str):
        return str(doc["id"])
    return None
