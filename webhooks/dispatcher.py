"""The dispatcher: take events from the events queue, POST each, signed, to every endpoint
that wants it, and retry each endpoint on its own schedule.

An event from the sender (an *original*) fans out to every subscribed endpoint at once.
An endpoint that fails gets a *copy* of the event: a new message on the events queue that
names the endpoint, its attempt number and when it is due (``DelaySeconds`` up to 15
minutes, then the copy is hidden until due), so each endpoint retries on its own and a slow
or dead one never holds back the others. The original is deleted once every endpoint has
either taken the event or got its copy. After the last step of the schedule the copy goes
to the events DLQ (``mailpool webhooks redrive`` replays it). An endpoint that keeps
failing opens its circuit (its deliveries are postponed without a request until a trial
succeeds); one that answers ``410 Gone`` is disabled until restart, loudly.
"""

import asyncio
import logging
import time
from collections.abc import Sequence

import aiohttp
import orjson

from aws.errors import AwsError
from core.breaker import Breaker
from core.events import Event, EventError
from core.sealing import Keyring
from metrics.webhooks import WebhookMetrics
from pool.capacity import Capacity
from pool.consumer import Receiving, consume
from pool.messages import Outgoing, Received
from pool.pool import EVENTS, SES_FEEDBACK, QueuePool
from state.publisher import Publisher
from state.store import State
from webhooks import ses, signing
from webhooks.config import WebhooksConfig
from webhooks.endpoints import Endpoint
from webhooks.safety import RefusedAddress, literal_refused

log = logging.getLogger(__name__)

ENDPOINT_ATTRIBUTE = "mailpool-endpoint"
ATTEMPT_ATTRIBUTE = "mailpool-attempt"
DUE_ATTRIBUTE = "mailpool-due"
USER_AGENT = "mailpool-webhooks/1"
#: SQS's longest message delay and visibility timeout.
MAX_DELAY_S = 900
MAX_HIDE_S = 43_200


class Dispatcher:
    """Delivers events from ``pool``'s events queue to ``endpoints``."""

    def __init__(
        self,
        config: WebhooksConfig,
        pool: QueuePool,
        endpoints: Sequence[Endpoint],
        metrics: WebhookMetrics,
        *,
        public: aiohttp.ClientSession,
        internal: aiohttp.ClientSession,
        keyring: Keyring | None = None,
        state: State | None = None,
    ) -> None:
        self._config = config
        self._state = state
        self._publisher = Publisher(pool, keyring, state)
        self._pool = pool
        self._endpoints = {e.name: e for e in endpoints}
        self._metrics = metrics
        self._public = public
        self._internal = internal
        self._keyring = keyring
        self._capacity = Capacity(config.concurrency)
        #: SES feedback is converted one message at a time: room for one receive's worth.
        self._feedback_room = Capacity(10)
        self._slots = {e.name: asyncio.Semaphore(config.per_endpoint) for e in endpoints}
        self._breakers = {
            e.name: Breaker(config.breaker_threshold, config.breaker_cooldown_s) for e in endpoints
        }
        self._disabled: set[str] = set()
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop receiving; ``run`` returns once the events in hand are settled. Idempotent."""
        self._stopping.set()
        self._capacity.close()
        self._feedback_room.close()

    async def _feedback(self) -> None:
        """Turn SES event notifications into mailpool events on the events queue, through
        the same receive loop as the events, one message after another."""

        async def convert(messages: list[Received], started: float) -> None:
            for message in messages:
                try:
                    await self._convert(message)
                except AwsError as exc:  # it comes back when its visibility runs out
                    log.warning("SES feedback failed", extra={"error": type(exc).__name__})
                finally:
                    self._feedback_room.give(1)

        await consume(
            self._pool,
            SES_FEEDBACK,
            self._feedback_room,
            convert,
            Receiving(wait_s=self._config.wait_time_s, pause_s=1.0, max_pause_s=1.0),
            stopped=self._stopping,
            failed=_feedback_failed,
        )

    async def _convert(self, message: Received) -> None:
        record = ses.feedback(message.body)
        if record is None:
            log.warning("not an SES event; dead-lettered", extra={"sqs_id": message.message_id})
            await self._pool.dead_letter(message, "unreadable_feedback")
            return
        event = ses.to_event(record)
        if event is not None:  # status and suppressions first, then the events queue
            await self._publisher.publish([event])
        await self._pool.delete(message)

    async def run(self) -> None:
        """Receive and dispatch until ``stop`` (and turn SES feedback into events, when the
        pool has its queue)."""
        async with asyncio.TaskGroup() as tasks:
            if self._pool.ses_feedback:
                tasks.create_task(self._feedback(), name="ses-feedback")

            async def dispatch(messages: list[Received], started: float) -> None:
                self._metrics.received(len(messages))
                for message in messages:
                    tasks.create_task(self._handle(message))

            await consume(
                self._pool,
                EVENTS,
                self._capacity,
                dispatch,
                Receiving(
                    wait_s=self._config.wait_time_s,
                    visibility_s=self._config.visibility_s,
                    pause_s=1.0,
                    max_pause_s=1.0,
                ),
                stopped=self._stopping,
                failed=_receive_failed,
            )

    async def _handle(self, message: Received) -> None:
        try:
            await self._dispatch(message)
        except AwsError as exc:  # it comes back when its visibility runs out
            log.warning(
                "could not settle an event",
                extra={"sqs_id": message.message_id, "error": type(exc).__name__},
            )
        finally:
            self._capacity.give(1)

    async def _dispatch(self, message: Received) -> None:
        now = time.time()
        due = float(message.attributes.get(DUE_ATTRIBUTE, "0"))
        if due > now + 1:  # a copy whose time has not come: hide it until then
            await self._pool.set_visibility(message, min(MAX_HIDE_S, round(due - now)))
            return
        try:
            event = Event.decode(message.body, self._keyring)
        except EventError:
            log.warning("not an event; dead-lettered", extra={"sqs_id": message.message_id})
            await self._pool.dead_letter(message, "undecodable_event")
            return
        target = message.attributes.get(ENDPOINT_ATTRIBUTE)
        attempt = int(message.attributes.get(ATTEMPT_ATTRIBUTE, "0"))
        if target is None:
            endpoints = [e for e in self._endpoints.values() if e.wants(event.type, event.scope)]
        else:
            endpoint = self._endpoints.get(target)
            endpoints = [] if endpoint is None else [endpoint]  # an endpoint since removed
        body = orjson.dumps(event.document())
        later: list[Outgoing] = []
        dead: list[Outgoing] = []
        results = await asyncio.gather(*(self._deliver(e, event.id, body) for e in endpoints))
        for endpoint, postponed_until in zip(endpoints, results, strict=True):
            if postponed_until is None:
                continue
            if postponed_until > 0:  # circuit open: no attempt made, none counted
                later.append(_copy(message.body, endpoint.name, attempt, postponed_until))
            elif attempt < len(self._config.schedule_s):
                when = time.time() + self._config.schedule_s[attempt]
                later.append(_copy(message.body, endpoint.name, attempt + 1, when))
            else:
                self._metrics.dead_lettered(endpoint.name)
                log.warning(
                    "webhook retries exhausted; event dead-lettered",
                    extra={"id": event.id, "provider": endpoint.name},
                )
                dead.append(_copy(message.body, endpoint.name, attempt, 0))
        if later:
            await self._pool.publish(later)
        if dead:
            await self._pool.publish(dead, dead=True)
        await self._pool.delete(message)

    async def _deliver(self, endpoint: Endpoint, event_id: str, body: bytes) -> float | None:
        """One attempt: None when settled for this endpoint (delivered, disabled), 0 when it
        failed, or the time to postpone it to while the endpoint's circuit is open."""
        name = endpoint.name
        if name in self._disabled:
            return None
        breaker = self._breakers[name]
        now = time.monotonic()
        if not breaker.available(now):
            self._metrics.attempt(name, "skipped", 0.0)
            return time.time() + (breaker.open_until - now)
        started = time.perf_counter()
        async with self._slots[name]:
            outcome = await self._post(endpoint, event_id, body)
        self._metrics.attempt(name, outcome, time.perf_counter() - started)
        if outcome == "delivered":
            if breaker.failures:
                self._metrics.state(name, "enabled")
            breaker.succeeded()
            return None
        if outcome == "gone":
            self._disabled.add(name)
            self._metrics.state(name, "disabled")
            log.error(
                "webhook endpoint answered 410 Gone: disabled until restart; remove it from "
                "the configuration",
                extra={"provider": name},
            )
            return None
        if breaker.failed(time.monotonic()):
            self._metrics.state(name, "open")
            log.warning("webhook endpoint failing; circuit open", extra={"provider": name})
        return 0.0

    async def _post(self, endpoint: Endpoint, event_id: str, body: bytes) -> str:
        if not endpoint.internal and literal_refused(endpoint.url):
            return "refused"
        session = self._internal if endpoint.internal else self._public
        headers = {
            **signing.headers(endpoint.key, event_id, body, previous=endpoint.previous),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        timeout = aiohttp.ClientTimeout(total=self._config.attempt_timeout_s)
        post = session.post(
            endpoint.url, data=body, headers=headers, allow_redirects=False, timeout=timeout
        )
        try:
            async with post as response:
                status = response.status
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientConnectorError as exc:
            return "refused" if isinstance(exc.os_error, RefusedAddress) else "failed"
        except aiohttp.ClientError:
            return "failed"
        if 200 <= status < 300:
            return "delivered"
        return "gone" if status == 410 else "failed"


def _receive_failed(exc: AwsError) -> None:
    log.warning("receiving events failed", extra={"error": type(exc).__name__})


def _feedback_failed(exc: AwsError) -> None:
    log.warning("SES feedback failed", extra={"error": type(exc).__name__})


def _copy(body: str, endpoint: str, attempt: int, due: float) -> Outgoing:
    """A per-endpoint copy of an event, due at ``due`` (0: now)."""
    delay = max(0, min(MAX_DELAY_S, round(due - time.time()))) if due else 0
    return Outgoing(
        body=body,
        attributes={
            ENDPOINT_ATTRIBUTE: endpoint,
            ATTEMPT_ATTRIBUTE: str(attempt),
            DUE_ATTRIBUTE: f"{due:.3f}",
        },
        delay_s=delay,
    )
