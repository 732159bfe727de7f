"""The sender: long-poll every shard, deliver through a provider, settle every message.

Order: messages of one group in a received batch go one after another; when one fails,
the later ones of its group are released (visibility 0) unsent, so the group is redelivered
in order. Different groups run concurrently, bounded by ``Shares`` (the concurrency, shared
by the pool's streams by weight, each under its cap), which is taken
*before* each receive so that no message waits in memory while its visibility runs out.

Every received message is settled exactly once: deleted (delivered), hidden for a backoff
(transient failure; SQS moves it to the DLQ after maxReceiveCount), moved to the DLQ
(permanent failure), or released (unstarted at shutdown, or behind a failed one of its group).

``sender/delivery.py`` decides each attempt's outcome; ``sender/settle.py`` publishes the
outcome's events to the events queue *before* it settles the message, so no outcome is
lost.

What cannot be settled is not taken: a decided message whose events or settling call
(delete, DLQ move) fail stays held (its visibility extended, so it is not delivered again)
while a mender retries them, and no shard receives anything new until every held message
is recorded and every failed call that records an outcome (delete, DLQ move, event
publish) has landed or given up.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable

from aws.errors import AwsError
from core.backoff import backoff
from core.ordering import chains, until_failure
from pool.consumer import Receiving, consume, pause
from pool.messages import Received
from pool.shares import Shares
from sender.config import SenderConfig
from sender.delivery import Outcome, Settle
from sender.depth import DepthPoller
from sender.parts import SenderParts
from sender.settle import Settlement
from sender.tracker import Tracker

log = logging.getLogger(__name__)


class Sender:
    """Receives from every shard of ``pool`` and delivers through ``provider``."""

    def __init__(self, config: SenderConfig, parts: SenderParts) -> None:
        self._config = config
        self._state = parts.state
        self._pool = pool = parts.pool
        self._metrics = metrics = parts.metrics
        metrics.prepare(pool.shards, [parts.provider.name], pool.streams)
        self._delivery = parts.delivery(config, lambda: self.stopping)
        self._settler = parts.settler(source_deletes=False)
        self._shares = Shares(config.concurrency, pool.config.all_streams)
        #: Each shard's loop takes room from its stream's share.
        self._rooms = [
            self._shares.view(pool.config.stream_at(k)[0].name) for k in range(pool.shards)
        ]
        self._tracker = Tracker(pool, pool.config.visibility_timeout_s)
        self._stopping = asyncio.Event()
        self._chains: set[asyncio.Task[None]] = set()
        #: Decided messages whose events or settling call failed, by receipt (held, their
        #: visibility extended, while the mender retries).
        self._held: dict[str, Settlement] = {}
        #: Outcomes being recorded now, by receipt.
        self._deciding: dict[str, Settlement] = {}
        self._owed = asyncio.Event()
        self.depth = DepthPoller(pool, metrics, config.depth_interval_s)
        # Under load, receive only once a batch's worth of slots is free (an eighth of the
        # bound, at most 10): full receives, and never more than 1/8 of capacity idle.
        self._receiving = Receiving(
            wait_s=config.wait_time_s, at_least=max(1, min(10, config.concurrency // 8))
        )

    def served(self) -> list[int]:
        """The shards of the streams this sender serves (every shard by default)."""
        pool = self._pool.config
        wanted = self._config.streams
        return [k for k in range(pool.shards) if not wanted or pool.stream_at(k)[0].name in wanted]

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop receiving; ``run`` then drains within the grace period. Idempotent."""
        self._stopping.set()
        self._shares.close()

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
                    for shard in self.served()
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
                await self._shares.drained()
                # Delivered messages gave their slots back before their deletes landed.
                while self._chains:
                    await asyncio.wait(set(self._chains))
        except TimeoutError:
            log.warning("grace period over; cancelling sends", extra={"count": len(self._chains)})
            for task in [*polls, *self._chains]:
                task.cancel()

    async def _poll(self, shard: int) -> None:
        await consume(
            self._pool,
            shard,
            self._rooms[shard],
            functools.partial(self._received, shard),
            self._receiving,
            stopped=self._stopping,
            ready=functools.partial(self._until_settled, shard),
            failed=functools.partial(self._receive_failed, shard),
        )

    def _receive_failed(self, shard: int, exc: AwsError) -> None:
        self._metrics.receive_failed(shard)
        log.warning("receive failed", extra={"shard": shard, "error": type(exc).__name__})

    async def _received(self, shard: int, messages: list[Received], started: float) -> None:
        """Hold what a receive brought and start delivering it (or release it unstarted)."""
        self._metrics.received(shard, len(messages))
        now = time.time()
        for message in messages:
            self._metrics.lag(now - message.sent_at)
        self.depth.received(shard, max(m.sent_at for m in messages))
        fresh = await self._drop_repeats(messages)
        self._rooms[shard].give(len(messages) - len(fresh))
        if not fresh:
            return
        self._tracker.hold(fresh, started)
        self._metrics.in_flight(self._tracker.working)
        # Stopping, or settling began failing during the long poll: release them unstarted.
        if self._stopping.is_set() or self._cannot_settle(shard):
            await self._release(fresh)
            return
        self._dispatch(fresh)

    async def _drop_repeats(self, messages: list[Received]) -> list[Received]:
        """``messages`` less those this sender holds or delivered already, received again
        because their visibility ran out while it held them (an engine outage longer than the
        visibility timeout): a delivered one's new copy is deleted, one still being sent is
        left to its first attempt. Delivering either again would be a duplicate."""
        fresh: list[Received] = []
        repeats: list[Received] = []
        for message in messages:
            seen = self._tracker.again(message)
            if seen is None:
                fresh.append(message)
            else:
                log.warning(
                    "received again while held; not sent twice",
                    extra={"sqs_id": message.message_id, "shard": message.shard, "held": seen},
                )
                if seen == "delivered":
                    repeats.append(message)
        if repeats:
            try:
                await asyncio.gather(*(self._pool.delete(m) for m in repeats))
            except AwsError as exc:  # it comes back, and is recognised again
                log.warning("could not delete a repeat", extra={"error": type(exc).__name__})
        return fresh

    async def _until_settled(self, shard: int) -> None:
        """Receive nothing new while deletes fail: what cannot be settled is not taken."""
        paused = False
        while not self._stopping.is_set() and self._cannot_settle(shard):
            if not paused:
                paused = True
                log.warning(
                    "settling is failing; receiving nothing until it lands",
                    extra={"shard": shard, "count": len(self._held)},
                )
            await self._pause(0.2)
        if paused:
            log.info("deletes land again; receiving", extra={"shard": shard})

    def _cannot_settle(self, shard: int) -> bool:
        state_failing = self._state is not None and self._state.retrying
        return bool(self._held) or self._pool.settles_failing(shard) or state_failing

    async def _mend(self) -> None:
        """Retry what is owed (events, then the delete or DLQ move) until each lands, or its
        receipt no longer holds the message."""
        failures = 0
        while True:
            await self._owed.wait()
            await asyncio.sleep(backoff(failures, 0.25, 5.0))
            owed = list(self._held.items())
            results = await asyncio.gather(
                *(item.run() for _, item in owed), return_exceptions=True
            )
            progress = False
            for (receipt, item), result in zip(owed, results, strict=True):
                if isinstance(result, AwsError) and result.retriable:
                    continue
                if isinstance(result, BaseException) and not isinstance(result, AwsError):
                    raise result
                outcome = item.label
                if isinstance(result, AwsError):  # the receipt no longer holds the message
                    outcome = "failed"
                    log.warning(
                        "could not settle a decided message; it will be tried again",
                        extra={
                            "id": item.email_id,
                            "shard": item.message.shard,
                            "code": result.code,
                        },
                    )
                del self._held[receipt]
                self._tracker.drop(item.message)
                self._metrics.outcome(item.message.shard, outcome)
                progress = True
            self._metrics.undeleted(len(self._held))
            failures = 0 if progress else failures + 1
            if not self._held:
                self._owed.clear()

    async def _pause(self, seconds: float) -> None:
        await pause(self._stopping, seconds)

    def _dispatch(self, messages: list[Received]) -> None:
        for chain in chains(messages, lambda m: m.group or m.message_id).values():
            task = self._tasks.create_task(self._run_chain(chain))
            self._chains.add(task)
            task.add_done_callback(self._chains.discard)

    async def _run_chain(self, chain: list[Received]) -> None:
        # When one fails (or shutdown comes first), the rest of its group is released, so
        # the group comes back in order.
        await self._release(await until_failure(chain, self._deliver))

    async def _deliver(self, message: Received) -> bool:
        """Deliver one message; False when its group must stop here (it will come back)."""
        if self._stopping.is_set():
            await self._release([message])
            return False
        outcome = await self._delivery.attempt(message)
        if outcome.settle is Settle.RETRY:
            await self._retry_later(message, outcome)
            return False
        if outcome.settle is Settle.DEAD_LETTER:
            log.warning(
                "dead-lettered",
                extra={"id": outcome.email_id, "shard": message.shard, "reason": outcome.reason},
            )
            await self._decided(message, outcome)
            return True
        # Delivered: its slot goes back now, not after the batched delete (which lingers to
        # fill its batch), so deletes never hold back receives. The tracker keeps holding
        # the message (heartbeat, shutdown) until the delete lands.
        self._tracker.mark_delivered(message)
        self._rooms[message.shard].give(1)
        self._metrics.in_flight(self._tracker.working)
        if await self._decided(message, outcome):
            assert outcome.envelope is not None
            stream = outcome.envelope.stream or self._pool.default_stream
            self._metrics.delivered_after(time.time() - outcome.envelope.accepted_at, stream)
            log.debug("delivered", extra={"id": outcome.email_id, "shard": message.shard})
        return True

    async def _decided(self, message: Received, outcome: Outcome) -> bool:
        """Settle a final outcome (``sender.settle``: events, then delete or DLQ move); if
        that fails, hold the message (not sent again) and let the mender finish. True once
        settled."""
        item = self._settler.settlement(message, outcome)
        self._deciding[message.receipt] = item  # what a shutdown must still record
        try:
            await item.run()
        except AwsError as exc:
            del self._deciding[message.receipt]
            if outcome.settle is not Settle.DELETE:  # held by the mender, not by capacity
                self._rooms[message.shard].give(1)
            self._held[message.receipt] = item
            self._owed.set()
            self._metrics.undeleted(len(self._held))
            log.warning(
                "could not record an outcome; holding the message and retrying",
                extra={"id": outcome.email_id, "shard": message.shard, "error": type(exc).__name__},
            )
            return False
        del self._deciding[message.receipt]
        self._tracker.drop(message)
        if outcome.settle is not Settle.DELETE:  # a delivered message gave its slot back
            self._rooms[message.shard].give(1)
        self._metrics.outcome(message.shard, outcome.settle.value)
        self._metrics.in_flight(self._tracker.working)
        return True

    async def _retry_later(self, message: Received, outcome: Outcome) -> None:
        log.info(
            "transient failure, retrying later",
            extra={
                "id": outcome.email_id,
                "shard": message.shard,
                "reason": outcome.reason,
                "attempt": message.receive_count,
                "delay": outcome.delay_s,
            },
        )
        settlement = self._settler.settlement(message, outcome)
        try:
            await settlement.publish()
        except AwsError as exc:  # not hidden: it comes back after its visibility timeout
            log.warning(
                "could not publish a deferral; the message comes back when its visibility ends",
                extra={"id": outcome.email_id, "error": type(exc).__name__},
            )
            await self._settle(message, "failed", outcome.email_id, _nothing())
            return
        await self._settle(message, "retried", outcome.email_id, settlement.run())

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
        except AwsError as exc:
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
            self._rooms[message.shard].give(1)
        self._metrics.outcome(message.shard, outcome)
        self._metrics.in_flight(self._tracker.working)
        return outcome != "failed"

    async def _settle_leftovers(self) -> None:
        """After a cancelled drain: record what was decided (events, then delete or DLQ),
        release everything else."""
        held = self._tracker.remaining()
        if not held:
            return
        log.warning("settling messages left at shutdown", extra={"count": len(held)})
        decided = {**self._deciding, **self._held}
        settling = []
        for h in held:
            item = decided.get(h.message.receipt)
            if item is not None:
                action, outcome = item.run(), item.label
            elif h.delivered:
                action, outcome = self._pool.delete(h.message), "delivered"
            else:
                action, outcome = self._pool.set_visibility(h.message, 0), "released"
            settling.append(
                self._settle(
                    h.message,
                    outcome,
                    h.message.message_id,
                    action,
                    slot_held=not h.delivered and item is None,
                )
            )
        await asyncio.gather(*settling)


async def _nothing() -> None:
    """A settle call that does nothing (the message is left to its visibility timeout)."""
