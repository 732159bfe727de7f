"""The sender: long-poll every shard, deliver through a provider, settle every message.

Order: messages of one group in a received batch go one after another; when one fails,
the later ones of its group are released (visibility 0) unsent, so the group is redelivered
in order. Different groups run concurrently, bounded by ``Capacity``, which is taken
*before* each receive so that no message waits in memory while its visibility runs out.

Every received message is settled exactly once: deleted (delivered), hidden for a backoff
(transient failure; SQS moves it to the DLQ after maxReceiveCount), moved to the DLQ
(permanent failure), or released (unstarted at shutdown, or behind a failed one of its group).

What cannot be settled is not taken: a delivered message whose delete fails stays held
(its visibility extended, so it is not delivered again) while a mender retries the delete,
and no shard receives anything new until every such delete has landed and the latest
delete call of its shard went through.
"""

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable

from mailpool.envelope import Envelope, EnvelopeError, pointer_of
from mailpool.sealing import Keyring
from metrics.sender import SenderMetrics
from pool.blobs import BlobMissing, BlobStore
from pool.errors import PoolError
from pool.messages import Received
from pool.pool import QueuePool
from sender.capacity import Capacity
from sender.config import SenderConfig
from sender.depth import DepthPoller
from sender.providers.base import DelayError, PermanentError, Provider, TransientError
from sender.tracker import Tracker

log = logging.getLogger(__name__)

MAX_VISIBILITY_S = 43_200


class _Unreadable(Exception):
    """A message whose envelope cannot be read now (transient) or ever."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


def backoff(config: SenderConfig, receive_count: int) -> int:
    """Seconds to hide a message after its ``receive_count``-th failed attempt (jittered)."""
    exponent = min(max(0, receive_count - 1), 30)
    ceiling: int = min(config.max_backoff_s, config.backoff_s * 2**exponent)
    return min(MAX_VISIBILITY_S, round(ceiling * random.uniform(0.8, 1.0)))


class Sender:
    """Receives from every shard of ``pool`` and delivers through ``provider``."""

    def __init__(
        self,
        config: SenderConfig,
        pool: QueuePool,
        provider: Provider,
        metrics: SenderMetrics,
        keyring: Keyring | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self._config = config
        self._keyring = keyring
        self._blobs = blobs
        self._pool = pool
        self._provider = provider
        self._metrics = metrics
        metrics.prepare(pool.shards, [provider.name])
        self._capacity = Capacity(config.concurrency)
        self._tracker = Tracker(pool, pool.config.visibility_timeout_s)
        self._stopping = asyncio.Event()
        self._chains: set[asyncio.Task[None]] = set()
        #: Delivered messages whose delete failed, by receipt, with their mailpool id.
        self._undeleted: dict[str, tuple[Received, str]] = {}
        self._owed = asyncio.Event()
        self.depth = DepthPoller(pool, metrics, config.depth_interval_s)
        # Under load, receive only once a batch's worth of slots is free (an eighth of the
        # bound, at most 10): full receives, and never more than 1/8 of capacity idle.
        self._receive_at_least = max(1, min(10, config.concurrency // 8))

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop receiving; ``run`` then drains within the grace period. Idempotent."""
        self._stopping.set()
        self._capacity.close()

    async def run(self) -> None:
        """Work until ``stop``; then finish in-flight sends within grace and release the rest."""
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                heartbeat = tasks.create_task(self._tracker.run(), name="heartbeat")
                depth = tasks.create_task(self.depth.run(), name="depth")
                mender = tasks.create_task(self._mend(), name="mender")
                polls = [
                    tasks.create_task(self._poll(shard), name=f"poll-{shard}")
                    for shard in range(self._pool.shards)
                ]
                await self._stopping.wait()
                await self._drain(polls)
                heartbeat.cancel()
                depth.cancel()
                mender.cancel()
        finally:
            await self._settle_leftovers()

    async def _drain(self, polls: list[asyncio.Task[None]]) -> None:
        try:
            async with asyncio.timeout(self._config.grace_s):
                # A long poll already under way is allowed to finish: what it brings is
                # released at once rather than left to time out invisibly.
                await asyncio.gather(*polls)
                await self._capacity.drained()
                # Delivered messages gave their slots back before their deletes landed.
                while self._chains:
                    await asyncio.wait(set(self._chains))
        except TimeoutError:
            log.warning("grace period over; cancelling sends", extra={"count": len(self._chains)})
            for task in [*polls, *self._chains]:
                task.cancel()

    async def _poll(self, shard: int) -> None:
        failures = 0
        while not self._stopping.is_set():
            await self._until_settled(shard)
            room = await self._capacity.take(10, self._receive_at_least)
            if room == 0:
                return
            started = time.monotonic()
            try:
                messages = await self._pool.receive(
                    shard, max_messages=room, wait_s=self._config.wait_time_s
                )
            except PoolError as exc:
                self._capacity.give(room)
                failures += 1
                self._metrics.receive_failed(shard)
                log.warning("receive failed", extra={"shard": shard, "error": type(exc).__name__})
                await self._pause(min(30.0, 0.25 * 2 ** min(failures, 7)))
                continue
            except BaseException:
                self._capacity.give(room)
                raise
            failures = 0
            self._capacity.give(room - len(messages))
            if not messages:
                continue
            self._metrics.received(shard, len(messages))
            now = time.time()
            for message in messages:
                self._metrics.lag(now - message.sent_at)
            self.depth.received(shard, max(m.sent_at for m in messages))
            self._tracker.hold(messages, started)
            self._metrics.in_flight(self._tracker.working)
            if self._stopping.is_set():
                await self._release(messages)
                return
            if self._cannot_settle(shard):  # deletes began failing during the long poll
                await self._release(messages)
                continue
            self._dispatch(messages)

    async def _until_settled(self, shard: int) -> None:
        """Receive nothing new while deletes fail: what cannot be settled is not taken."""
        paused = False
        while not self._stopping.is_set() and self._cannot_settle(shard):
            if not paused:
                paused = True
                log.warning(
                    "deletes are failing; receiving nothing until they land",
                    extra={"shard": shard, "count": len(self._undeleted)},
                )
            await self._pause(0.2)
        if paused:
            log.info("deletes land again; receiving", extra={"shard": shard})

    def _cannot_settle(self, shard: int) -> bool:
        return bool(self._undeleted) or self._pool.deletes_failing(shard)

    async def _mend(self) -> None:
        """Retry the deletes of delivered messages until each lands (or its receipt is gone)."""
        failures = 0
        while True:
            await self._owed.wait()
            await asyncio.sleep(min(5.0, 0.25 * 2 ** min(failures, 5)))
            owed = list(self._undeleted.items())
            results = await asyncio.gather(
                *(self._pool.delete(message) for _, (message, _) in owed), return_exceptions=True
            )
            progress = False
            for (receipt, (message, message_id)), result in zip(owed, results, strict=True):
                if isinstance(result, PoolError) and result.retriable:
                    continue
                if isinstance(result, BaseException) and not isinstance(result, PoolError):
                    raise result
                outcome = "delivered"
                if isinstance(result, PoolError):  # the receipt no longer holds the message
                    outcome = "failed"
                    log.warning(
                        "could not delete a delivered message; it will be delivered again",
                        extra={"id": message_id, "shard": message.shard, "code": result.code},
                    )
                del self._undeleted[receipt]
                self._tracker.drop(message)
                self._metrics.outcome(message.shard, outcome)
                progress = True
            self._metrics.undeleted(len(self._undeleted))
            failures = 0 if progress else failures + 1
            if not self._undeleted:
                self._owed.clear()

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass

    def _dispatch(self, messages: list[Received]) -> None:
        chains: dict[str, list[Received]] = {}
        for message in messages:
            chains.setdefault(message.group or message.message_id, []).append(message)
        for chain in chains.values():
            task = self._tasks.create_task(self._run_chain(chain))
            self._chains.add(task)
            task.add_done_callback(self._chains.discard)

    async def _run_chain(self, chain: list[Received]) -> None:
        for position, message in enumerate(chain):
            if self._stopping.is_set():
                await self._release(chain[position:])
                return
            if not await self._deliver(message):
                await self._release(chain[position + 1 :])
                return

    async def _deliver(self, message: Received) -> bool:
        """Deliver one message; False when its group must stop here (it will come back)."""
        try:
            envelope = await self._open(message)
        except _Unreadable as exc:
            if exc.transient:
                await self._retry_later(message, message.message_id, exc.reason)
                return False
            return await self._dead_letter(message, exc.reason, message.message_id)
        provider = self._provider.name
        started = time.perf_counter()
        try:
            await self._send_through_delays(envelope)
        except TransientError as exc:
            self._metrics.sent(provider, "transient", time.perf_counter() - started)
            await self._retry_later(message, envelope.id, exc.reason)
            return False
        except PermanentError as exc:
            self._metrics.sent(provider, "permanent", time.perf_counter() - started)
            return await self._dead_letter(message, exc.reason, envelope.id)
        except Exception as exc:  # a provider bug: retry later, never kill the loop
            self._metrics.sent(provider, "error", time.perf_counter() - started)
            log.exception(
                "provider raised unexpectedly",
                extra={"id": envelope.id, "error": type(exc).__name__},
            )
            await self._retry_later(message, envelope.id, "provider_error")
            return False
        self._metrics.sent(provider, "delivered", time.perf_counter() - started)
        # Delivered: its slot goes back now, not after the batched delete (which lingers to
        # fill its batch), so deletes never hold back receives. The tracker keeps holding
        # the message (heartbeat, shutdown) until the delete lands.
        self._tracker.mark_delivered(message)
        self._capacity.give(1)
        self._metrics.in_flight(self._tracker.working)
        delete = self._pool.delete(message)
        if await self._settle(message, "delivered", envelope.id, delete, slot_held=False):
            self._metrics.delivered_after(time.time() - envelope.accepted_at)
            log.debug("delivered", extra={"id": envelope.id, "shard": message.shard})
            await self._forget_body(message, envelope.id)
        return True

    async def _open(self, message: Received) -> Envelope:
        """The envelope a message carries, fetched from S3 when the body is a pointer."""
        body: str | bytes = message.body
        pointer = pointer_of(message.body)
        if pointer is not None:
            if self._blobs is None:
                raise _Unreadable("blob_store_unconfigured", transient=True)
            try:
                body = await self._blobs.get(pointer.bucket, pointer.key)
            except BlobMissing:
                raise _Unreadable("blob_missing", transient=False) from None
            except PoolError:
                raise _Unreadable("blob_unavailable", transient=True) from None
        try:
            return Envelope.decode(body, self._keyring)
        except EnvelopeError as exc:
            raise _Unreadable(exc.reason, transient=False) from None

    async def _forget_body(self, message: Received, message_id: str) -> None:
        """Delete a delivered message's S3 body (the bucket's lifecycle catches a miss)."""
        pointer = pointer_of(message.body)
        if pointer is None or self._blobs is None:
            return
        try:
            await self._blobs.delete(pointer.bucket, pointer.key)
        except PoolError as exc:
            log.warning(
                "could not delete a delivered body from S3",
                extra={"id": message_id, "error": type(exc).__name__},
            )

    async def _send_through_delays(self, envelope: Envelope) -> None:
        """Send; while the provider throttles, wait and try again holding the message.

        Throttling is the provider asking to slow down, not a failure of this message: the
        message stays held (its visibility extended), so it spends none of its receives
        toward the DLQ. Past ``delay_budget_s``, or on shutdown, the throttle counts as an
        ordinary transient failure.
        """
        waited = 0.0
        for attempt in itertools.count():
            try:
                await self._provider.send(envelope)
                return
            except DelayError:
                pause = min(60.0, 2.0**attempt) * random.uniform(0.5, 1.0)
                if waited + pause > self._config.delay_budget_s or self._stopping.is_set():
                    raise
                self._metrics.sent(self._provider.name, "delayed", 0.0)
                waited += pause
                await asyncio.sleep(pause)

    async def _retry_later(self, message: Received, message_id: str, reason: str) -> None:
        delay = backoff(self._config, message.receive_count)
        log.info(
            "transient failure, retrying later",
            extra={
                "id": message_id,
                "shard": message.shard,
                "reason": reason,
                "attempt": message.receive_count,
                "delay": delay,
            },
        )
        await self._settle(
            message, "retried", message_id, self._pool.set_visibility(message, delay)
        )

    async def _dead_letter(self, message: Received, reason: str, message_id: str) -> bool:
        log.warning(
            "dead-lettered",
            extra={"id": message_id, "shard": message.shard, "reason": reason},
        )
        await self._settle(
            message, "dead_lettered", message_id, self._pool.dead_letter(message, reason)
        )
        return True

    async def _release(self, messages: list[Received]) -> None:
        """Make ``messages`` visible again at once, unsent."""
        await asyncio.gather(
            *(
                self._settle(m, "released", m.message_id, self._pool.set_visibility(m, 0))
                for m in messages
            )
        )

    async def _settle(
        self,
        message: Received,
        outcome: str,
        message_id: str,
        action: Awaitable[None],
        *,
        slot_held: bool = True,
    ) -> bool:
        """Run the SQS call that settles ``message``; count it and give its slot back
        (unless ``slot_held`` is False: a delivered message gave it back already)."""
        try:
            await action
        except PoolError as exc:
            if outcome == "delivered":
                # Held (not delivered again) while the mender retries its delete.
                self._undeleted[message.receipt] = (message, message_id)
                self._owed.set()
                self._metrics.undeleted(len(self._undeleted))
                log.warning(
                    "could not delete a delivered message; holding it and retrying",
                    extra={"id": message_id, "shard": message.shard, "error": type(exc).__name__},
                )
                return False
            # The message reappears when its visibility runs out; nothing is lost.
            log.warning(
                "could not settle message",
                extra={
                    "id": message_id,
                    "shard": message.shard,
                    "outcome": outcome,
                    "error": type(exc).__name__,
                },
            )
            outcome = "failed"
        self._tracker.drop(message)
        if slot_held:
            self._capacity.give(1)
        self._metrics.outcome(message.shard, outcome)
        self._metrics.in_flight(self._tracker.working)
        return outcome != "failed"

    async def _settle_leftovers(self) -> None:
        """After a cancelled drain: delete what was delivered, release everything else."""
        held = self._tracker.remaining()
        if not held:
            return
        log.warning("settling messages left at shutdown", extra={"count": len(held)})
        await asyncio.gather(
            *(
                self._settle(
                    h.message,
                    "delivered" if h.delivered else "released",
                    h.message.message_id,
                    self._pool.delete(h.message)
                    if h.delivered
                    else self._pool.set_visibility(h.message, 0),
                    slot_held=not h.delivered,
                )
                for h in held
            )
        )
