"""One invocation's batch: decide each message with the sender's code, settle it, and say
which ones go back (the partial batch response).

The event source mapping deletes what the answer does not name, so a message is left out
of ``batchItemFailures`` only once its outcome's events are published (and, dead-lettered,
its copy is in the DLQ). Everything else is named, with its visibility set: a transient
failure hidden for its backoff, a message not started (behind a failure of its group, or
too late in the invocation) visible again at once.

Order on FIFO: messages of one group go one after another; the first that does not succeed
returns itself and every later message of its group in the batch (as the sender releases
them), while other groups carry on.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aws.errors import AwsError
from core.backoff import backoff
from core.ordering import chains, until_failure
from metrics.sender import SenderMetrics
from pool.messages import Received
from pool.pool import QueuePool
from sender.delivery import Delivery, Outcome, Settle, readable_id
from sender.settle import Settlement, Settler
from serverless.config import LambdaConfig
from state.claims import Claim, Claims

log = logging.getLogger(__name__)

#: Seconds kept back from the invocation's end, beyond the margin, to answer in time.
ANSWER_S = 1.0


@dataclass(slots=True)
class Tally:
    """What one batch came to, by outcome (for the invocation's metrics line)."""

    outcomes: dict[str, int] = field(default_factory=dict)
    #: Seconds from acceptance to the provider's answer, per delivered email.
    latencies: list[float] = field(default_factory=list)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Batch:
    """Works one invocation's messages through ``delivery``; ``run`` returns the SQS
    message ids that go back to the queue."""

    def __init__(
        self,
        config: LambdaConfig,
        pool: QueuePool,
        delivery: Delivery,
        settler: Settler,
        metrics: SenderMetrics,
        remaining_s: Callable[[], float],
        claims: Claims | None = None,
    ) -> None:
        self._config = config
        self._claims = claims
        self._pool = pool
        self._delivery = delivery
        self._settler = settler
        self._metrics = metrics
        self._remaining_s = remaining_s
        self._succeeded: set[str] = set()
        self._returned: set[str] = set()
        self.tally = Tally()

    def late(self) -> bool:
        """Whether too little of the invocation is left to start a send."""
        return self._remaining_s() < self._config.margin_s

    async def run(self, messages: Sequence[Received]) -> list[str]:
        """Deliver and settle ``messages``; the message ids that go back, in batch order."""
        budget = max(0.0, self._remaining_s() - ANSWER_S)
        groups = chains(messages, lambda m: m.group or m.message_id).values()
        tasks = [asyncio.ensure_future(self._chain(chain)) for chain in groups]
        done, pending = await asyncio.wait(tasks, timeout=budget) if tasks else (set(), set())
        for task in pending:  # the invocation is ending: what is under way goes back
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        back = [m for m in messages if m.message_id not in self._succeeded]
        cut = [m for m in back if m.message_id not in self._returned]
        if cut:
            log.warning("invocation ending; sends cut short", extra={"count": len(cut)})
            for message in cut:
                self._fail(message, "cut_short")
        return list(dict.fromkeys(m.message_id for m in back))

    async def _chain(self, chain: list[Received]) -> None:
        rest = await until_failure(chain, self._deliver)
        await self._release(rest)

    async def _deliver(self, message: Received) -> bool:
        """Deliver one message; False when its group must stop here."""
        if self.late():
            await self._release([message])
            return False
        claimed = await self._claim(message)
        if claimed is not Claim.SEND:
            return claimed is Claim.DUPLICATE
        outcome = await self._delivery.attempt(message)
        done = await self._settle(message, outcome)
        if self._claims is not None and outcome.email_id:
            await self._end_claim(outcome.email_id, message.receipt, outcome.settle, done)
        return done

    async def _claim(self, message: Received) -> Claim:
        """With claims (a standard queue): whether this copy is the one to send."""
        email_id = readable_id(message.body) if self._claims is not None else None
        if self._claims is None or email_id is None:
            return Claim.SEND
        try:
            claim = await self._claims.take(email_id, message.receipt)
        except AwsError as exc:  # it comes back, and claims again
            extra = {"id": email_id, "error": type(exc).__name__}
            log.warning("could not claim an email", extra=extra)
            self._fail(message, "failed")
            return Claim.WAIT
        if claim is Claim.DUPLICATE:  # sent (or settled) already: the mapping deletes this copy
            log.info("a copy of a settled email; not sent again", extra={"id": email_id})
            self._metrics.outcome(message.shard, "duplicate")
            self.tally.count("duplicate")
            self._succeeded.add(message.message_id)
        elif claim is Claim.WAIT:  # another copy is being sent: this one comes back later
            self._fail(message, "waiting")
        return claim

    async def _end_claim(self, email_id: str, holder: str, settle: Settle, done: bool) -> None:
        """Settle the claim once the outcome is recorded; release it after a transient
        failure. Best effort: a claim left behind expires after its hold."""
        assert self._claims is not None
        try:
            if settle is Settle.RETRY:
                await self._claims.release(email_id)
            elif done:
                await self._claims.settle(email_id, holder)
        except AwsError as exc:
            extra = {"id": email_id, "error": type(exc).__name__}
            log.warning("could not end a claim; it expires", extra=extra)

    async def _settle(self, message: Received, outcome: Outcome) -> bool:
        """Settle ``message`` (``sender.settle``: events first, then its SQS call); whether
        it is done with (left out of the answer, for the event source to delete)."""
        settlement = self._settler.settlement(message, outcome)
        if outcome.settle is Settle.RETRY:
            log.info(
                "transient failure, retrying later",
                extra={"id": outcome.email_id, "reason": outcome.reason, "delay": outcome.delay_s},
            )
            if await self._published(settlement):
                await self._hide(settlement)
            self._fail(message, "retried")
            return False
        if not await self._published(settlement):
            self._fail(message, "failed")  # it comes back; its outcome is decided again
            return False
        if outcome.settle is Settle.DEAD_LETTER:
            log.warning("dead-lettered", extra={"id": outcome.email_id, "reason": outcome.reason})
        try:
            await settlement.run()
        except AwsError as exc:
            log.warning(
                "could not move a message to its DLQ; it comes back",
                extra={"id": outcome.email_id, "error": type(exc).__name__},
            )
            self._fail(message, "failed")
            return False
        if outcome.settle is not Settle.DEAD_LETTER and outcome.envelope is not None:
            latency = time.time() - outcome.envelope.accepted_at
            stream = outcome.envelope.stream or self._pool.default_stream
            self._metrics.delivered_after(latency, stream)
            self.tally.latencies.append(latency)
        self._metrics.outcome(message.shard, outcome.settle.value)
        self.tally.count(outcome.settle.value)
        self._succeeded.add(message.message_id)
        return True

    async def _published(self, settlement: Settlement) -> bool:
        """Publish the settlement's events, retrying while the invocation has time; whether
        they landed."""
        for attempt in range(1_000):
            try:
                await settlement.publish()
                return True
            except AwsError as exc:
                pause = backoff(attempt, 0.1, 2.0)
                if self._remaining_s() - pause < ANSWER_S + 1.0:
                    log.warning(
                        "could not publish an outcome's events; the message comes back",
                        extra={"id": settlement.email_id, "error": type(exc).__name__},
                    )
                    return False
                await asyncio.sleep(pause)
        return False

    async def _hide(self, settlement: Settlement) -> None:
        """Hide a transient failure for its backoff (best effort: failing, it comes back
        when the visibility the event source gave it runs out)."""
        try:
            await settlement.run()
        except AwsError as exc:
            log.warning(
                "could not change a message's visibility",
                extra={"sqs_id": settlement.message.message_id, "error": type(exc).__name__},
            )

    async def _release(self, messages: Sequence[Received]) -> None:
        """Return ``messages`` unsent, visible again at once (best effort: failing, each
        comes back when the visibility the event source gave it runs out)."""
        results = await asyncio.gather(
            *(self._pool.set_visibility(m, 0) for m in messages), return_exceptions=True
        )
        for message, result in zip(messages, results, strict=True):
            if isinstance(result, AwsError):
                log.warning(
                    "could not change a message's visibility",
                    extra={"sqs_id": message.message_id, "error": type(result).__name__},
                )
            elif isinstance(result, BaseException):
                raise result
            self._fail(message, "released")

    def _fail(self, message: Received, outcome: str) -> None:
        self._returned.add(message.message_id)
        self._metrics.outcome(message.shard, outcome)
        self.tally.count(outcome)
