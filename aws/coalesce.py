"""Coalescing concurrent requests to one queue into batch calls.

Callers ``submit`` one entry each and await their own future; one flusher task gathers
entries into batches (≤ ``max_entries``, ≤ ``max_bytes``) and runs up to ``max_calls``
batch calls at once. A full batch goes at once; a partial one waits ``linger_s`` for
company, or, while calls are in flight, up to one call's duration (≤ ``max_linger_s``):
overtaking them with a small batch would cost a call and gain little. An entry that
fails retriably (throttled, 5xx, connection lost) is retried with jittered exponential
backoff until its caller's deadline; then the caller gets the error, never silence. An
entry ``Cancelled`` only because another entry of an all-or-nothing call failed is no sign
of trouble: it goes again in the next call, first in line, and holds back no call.

Failure discipline: anything a batch call raises (an answer botocore cannot map, a bug in
an observer) fails only that call's entries with a retriable error naming the action and
the exception type; the next call goes out normally. An entry whose deadline has passed is
never sent. A call already under way when an entry's deadline comes is waited for, up to
``answer_margin_s`` more, so that its caller learns what happened instead of a guess; an
entry whose last word was no answer at all fails with ``NoAnswer`` (its outcome is in
doubt). With ``shed`` on, ``submit`` refuses at once (``Overloaded``) an entry that the
backlog ahead of it (pending and in flight, over the rate the queue takes entries while
busy) would keep past its deadline. If the flusher dies anyway, every pending and
in-flight future fails with ``PoolClosed`` so that no caller hangs, and its owner makes
the death loud.
"""

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aws.errors import AwsError, Cancelled, NoAnswer, Overloaded, PoolClosed, Unavailable
from core.backoff import backoff

log = logging.getLogger(__name__)

#: Admit an entry while the backlog's expected wait is within this share of its deadline.
SHED_SHARE = 0.5
#: Before a queue has answered, a call is assumed to take this long (a slow SQS call).
ASSUMED_CALL_S = 0.05

E = TypeVar("E")
R = TypeVar("R")

#: Performs one batch call: per entry, its result or the error of that entry.
BatchCall = Callable[[Sequence[E]], Awaitable[Sequence[R | AwsError]]]
#: Told of each batch call: its size, how long it took, the error if the whole call
#: failed, and the errors of the entries that failed inside a call that succeeded.
CallObserver = Callable[[int, float, AwsError | None, Sequence[AwsError]], None]


@dataclass(slots=True, eq=False)  # identity-hashed: items live in sets
class _Item(Generic[E, R]):
    entry: E
    size: int
    deadline: float
    future: asyncio.Future[R]
    #: An attempt got no answer: the entry may have been stored already.
    doubtful: bool = False
    #: The error of its latest attempt (what its caller gets if no later attempt is made).
    error: AwsError | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CoalescerLimits:
    """Batch bounds and retry timing of one coalescer."""

    max_entries: int = 10
    max_bytes: int = 1_048_576
    linger_s: float = 0.002
    #: While calls are in flight a partial batch waits up to one call's duration, capped here.
    max_linger_s: float = 0.02
    max_calls: int = 4
    deadline_s: float = 5.0
    backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    #: How long past the deadline an entry whose call is under way waits for its answer.
    answer_margin_s: float = 1.0
    #: Refuse entries at once (``Overloaded``) that the backlog would keep past their deadline.
    shed: bool = False
    #: With ``shed``: entries waiting or in flight at most (bounds memory whatever the rate).
    max_backlog: int = 5000


class ServiceRate:
    """Entries completed per second of *busy* time (some call in flight), weighted over
    ``tau_s`` of it: what the queue behind the coalescer takes when work is waiting, which
    idle time neither dilutes nor forgets. None until the first completion."""

    def __init__(self, tau_s: float = 2.0) -> None:
        self._tau = tau_s
        self._done = 0.0
        self._busy = 0.0
        self._since = 0.0

    def busy_from(self, now: float) -> None:
        """Calls start after an idle spell: busy time counts from ``now``."""
        self._since = now

    def add(self, count: int, now: float) -> None:
        """``count`` entries completed at ``now`` (monotonic), while busy."""
        spent = max(0.0, now - self._since)
        keep = math.exp(-spent / self._tau)
        self._done = self._done * keep + count
        self._busy = self._busy * keep + spent
        self._since = now

    @property
    def per_second(self) -> float | None:
        """The estimate (None before the first completion)."""
        return self._done / self._busy if self._busy > 0 else None


def _ignore(size: int, seconds: float, error: AwsError | None, entries: Sequence[AwsError]) -> None:
    return None


class Coalescer(Generic[E, R]):
    """Batches entries for one queue and one action; each caller awaits its own result."""

    def __init__(
        self,
        call: BatchCall[E, R],
        limits: CoalescerLimits,
        observe: CallObserver = _ignore,
        *,
        action: str = "batch",
    ) -> None:
        self.action = action
        self._call = call
        self._limits = limits
        self._observe = observe
        self._pending: collections.deque[_Item[E, R]] = collections.deque()
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(limits.max_calls)
        self._full = asyncio.Event()
        self._calls = 0
        self._call_s = 0.0
        self._closing = False
        self._dead = False
        self._inflight: set[_Item[E, R]] = set()
        self._rate = ServiceRate()
        # After a retriable failure no call starts before ``_hold_until``: throttled by
        # SQS, the coalescer makes fewer, fuller calls instead of more, emptier ones.
        self._hold_until = 0.0
        self._failures = 0

    @property
    def retrying(self) -> bool:
        """Whether an entry that has failed before still waits for a call (or is in one)."""
        return any(item.error is not None for item in (*self._pending, *self._inflight))

    @property
    def backlog(self) -> int:
        """Entries waiting for a batch or in a call under way."""
        return len(self._pending) + len(self._inflight)

    async def submit(self, entry: E, size: int = 0, deadline_s: float | None = None) -> R:
        """Queue ``entry`` for the next batch and wait for its own result."""
        return await self.enqueue(entry, size, deadline_s)

    def enqueue(
        self, entry: E, size: int = 0, deadline_s: float | None = None
    ) -> "asyncio.Future[R]":
        """Queue ``entry`` for the next batch; the future of its result (for a caller that
        does not wait for it: no task of its own). Refusals are raised here, at once."""
        if self._closing or self._dead:
            raise PoolClosed("the pool is closing")
        budget = self._limits.deadline_s if deadline_s is None else deadline_s
        if budget <= 0:
            raise Unavailable(f"{self.action}: no time left before the deadline")
        if self._limits.shed:
            self._admit(budget)
        if not self.backlog:
            self._rate.busy_from(time.monotonic())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(entry, size, time.monotonic() + budget, future))
        self._wake.set()
        if len(self._pending) >= self._limits.max_entries:
            self._full.set()
        return future

    def _admit(self, budget: float) -> None:
        """Refuse (``Overloaded``) an entry that would wait past ``SHED_SHARE`` of ``budget``.

        Its expected wait is the backlog ahead of it over the rate the queue takes entries
        when busy. Before the first answer there is no rate to judge by: full calls of
        ``ASSUMED_CALL_S`` each are assumed (a fresh intake takes a 500-email batch whole;
        it used to take one round of calls, 40 emails a shard, and refuse the rest).
        """
        backlog = self.backlog
        if backlog >= self._limits.max_backlog:
            raise Overloaded(f"{self.action}: the backlog is full")
        if backlog == 0:
            return
        limits = self._limits
        rate = self._rate.per_second or limits.max_entries * limits.max_calls / ASSUMED_CALL_S
        if (backlog + 1) / rate <= budget * SHED_SHARE:
            return
        raise Overloaded(f"{self.action}: the backlog would outlast the deadline")

    def close(self) -> None:
        """Take no new entries; ``run`` returns once the pending ones are settled."""
        self._closing = True
        self._wake.set()
        self._full.set()

    async def run(self) -> None:
        """The flusher: form batches and call them until closed and drained."""
        try:
            async with asyncio.TaskGroup() as calls:
                while not (self._closing and not self._pending):
                    await self._wake.wait()
                    self._wake.clear()
                    if not self._pending:
                        continue
                    await self._paced()
                    if len(self._pending) < self._limits.max_entries and not self._closing:
                        await self._gather_company()
                    while self._pending:
                        await self._slots.acquire()
                        await self._paced()
                        batch = self._take()
                        if batch:
                            calls.create_task(self._flush(batch))
                        else:
                            self._slots.release()
                        if 0 < len(self._pending) < self._limits.max_entries:
                            # What is left is a partial batch: it waits for company too.
                            self._wake.set()
                            break
        finally:
            self._dead = True
            self._fail_all(PoolClosed("the pool's flusher stopped"))

    async def _gather_company(self) -> None:
        """Let concurrent callers join a partial batch: ``linger_s``, or while calls are in
        flight up to one call's duration (nothing is gained by overtaking them with a small
        batch); at once when the batch fills."""
        wait = self._limits.linger_s
        if self._calls:
            wait = max(wait, min(self._call_s, self._limits.max_linger_s))
        self._full.clear()
        if len(self._pending) >= self._limits.max_entries or self._closing:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._full.wait()

    async def _paced(self) -> None:
        """Wait out the backoff of the latest retriable failure before the next call."""
        wait = self._hold_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    def _take(self) -> list[_Item[E, R]]:
        batch: list[_Item[E, R]] = []
        total = 0
        now = time.monotonic()
        while self._pending and len(batch) < self._limits.max_entries:
            item = self._pending[0]
            if batch and total + item.size > self._limits.max_bytes:
                break
            self._pending.popleft()
            if item.future.done():  # its caller was cancelled before the send
                continue
            if item.deadline <= now:  # not sent again: its caller gets the latest word
                error = item.error or Unavailable(
                    f"{self.action}: the deadline passed before it was sent"
                )
                item.future.set_exception(self._final(item, error))
                continue
            batch.append(item)
            total += item.size
        return batch

    async def _flush(self, batch: list[_Item[E, R]]) -> None:
        self._inflight.update(batch)
        self._calls += 1
        try:
            await self._attempt(batch)
        except Exception as exc:  # a bug here fails this call's entries, not the flusher
            log.exception(
                "batch call failed unexpectedly",
                extra={"action": self.action, "error": type(exc).__name__},
            )
            error = NoAnswer(f"{self.action}: unexpected {type(exc).__name__}")
            for item in batch:
                if item in self._inflight and not item.future.done():
                    item.future.set_exception(error)
        finally:
            self._calls -= 1
            for item in batch:
                if item in self._inflight:  # neither settled nor queued again
                    self._inflight.discard(item)
                    if not item.future.done():
                        item.future.set_exception(PoolClosed("the pool closed during the call"))
            self._slots.release()

    async def _attempt(self, batch: list[_Item[E, R]]) -> None:
        """One batch call: settle each entry, or queue it again (first in line) to be
        retried after a backoff that holds back every call of this coalescer."""
        outcomes = await self._call_once(batch)
        again: list[_Item[E, R]] = []  # cancelled for another's sake: in the next call
        retry: list[_Item[E, R]] = []
        delay = self._backoff(self._failures)
        now = time.monotonic()
        retriable = False
        for item, outcome in zip(batch, outcomes, strict=True):
            self._inflight.discard(item)
            if item.future.done():
                continue
            if not isinstance(outcome, AwsError):
                item.future.set_result(outcome)
                continue
            item.doubtful = item.doubtful or isinstance(outcome, NoAnswer)
            item.error = outcome
            if isinstance(outcome, Cancelled) and now < item.deadline:
                again.append(item)
                continue
            retriable = retriable or outcome.retriable
            if outcome.retriable and now + delay < item.deadline:
                retry.append(item)
            else:
                item.future.set_exception(self._final(item, outcome))
        if retriable:
            self._failures += 1
            self._hold_until = max(self._hold_until, now + delay)
        else:
            self._failures = 0
        if again or retry:
            self._pending.extendleft(reversed(again + retry))
            self._wake.set()

    async def _call_once(self, batch: list[_Item[E, R]]) -> Sequence[R | AwsError]:
        """Call once; per entry its result or error, whatever the call raised."""
        started = time.monotonic()
        # A call under way is waited for past the deadline (by a bounded margin): its answer,
        # not a guess, tells the caller whether the entry is stored.
        deadline = max(item.deadline for item in batch) + self._limits.answer_margin_s
        error: AwsError | None = None
        failed: list[AwsError] = []
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                outcomes = await self._call([item.entry for item in batch])
            if len(outcomes) != len(batch):
                raise ValueError("the call answered for a different number of entries")
        except AwsError as exc:
            error = exc
        except TimeoutError:
            error = NoAnswer(f"{self.action}: no answer before the deadline")
        except Exception as exc:  # an answer that cannot be read: it may have taken effect
            log.warning(
                "batch call answered unexpectedly",
                extra={"action": self.action, "error": type(exc).__name__},
            )
            error = NoAnswer(f"{self.action}: unexpected {type(exc).__name__}")
        took = time.monotonic() - started
        if error is not None:
            outcomes = [error] * len(batch)
        else:
            failed = [o for o in outcomes if isinstance(o, AwsError)]
            # A moving average of call durations (the first call sets it).
            self._call_s = took if not self._call_s else self._call_s + (took - self._call_s) / 8
            self._rate.add(len(batch) - len(failed), time.monotonic())
        self._tell_observer(len(batch), took, error, failed)
        return outcomes

    def _final(self, item: _Item[E, R], error: AwsError) -> AwsError:
        """The error a caller gets: ``NoAnswer`` if any attempt may have taken effect."""
        if item.doubtful and not isinstance(error, NoAnswer):
            return NoAnswer(f"{error} (after an attempt that got no answer)", code=error.code)
        return error

    def _tell_observer(
        self, size: int, took: float, error: AwsError | None, failed: Sequence[AwsError]
    ) -> None:
        try:
            self._observe(size, took, error, failed)
        except Exception as exc:  # metrics must never decide an entry's fate
            log.warning(
                "call observer failed",
                extra={"action": self.action, "error": type(exc).__name__},
                exc_info=exc,
            )

    def _backoff(self, attempt: int) -> float:
        limits = self._limits
        return backoff(attempt, limits.backoff_s, limits.max_backoff_s, jitter=0.5)

    def _fail_all(self, error: AwsError) -> None:
        for item in [*self._pending, *self._inflight]:
            if not item.future.done():
                item.future.set_exception(error)
        self._pending.clear()
        self._inflight.clear()


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a ``time.monotonic`` deadline to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
