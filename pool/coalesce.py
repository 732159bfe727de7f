"""Coalescing concurrent requests to one queue into batch calls.

Callers ``submit`` one entry each and await their own future; one flusher task gathers
entries into batches (≤ ``max_entries``, ≤ ``max_bytes``) and runs up to ``max_calls``
batch calls at once. A full batch goes at once; a partial one waits ``linger_s`` for
company, or, while calls are in flight, up to one call's duration (≤ ``max_linger_s``):
overtaking them with a small batch would cost a call and gain little. An entry that
fails retriably (throttled, 5xx, connection lost) is retried with jittered exponential
backoff until its caller's deadline; then the caller gets the error, never silence. If
the flusher dies or is cancelled, every pending and in-flight future fails with
``PoolClosed`` so that no caller hangs.
"""

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pool.errors import PoolClosed, PoolError, Unavailable

E = TypeVar("E")
R = TypeVar("R")

#: Performs one batch call: per entry, its result or the error of that entry.
BatchCall = Callable[[Sequence[E]], Awaitable[Sequence[R | PoolError]]]
#: Told of each batch call: its size, how long it took, the error if the whole call
#: failed, and the errors of the entries that failed inside a call that succeeded.
CallObserver = Callable[[int, float, PoolError | None, Sequence[PoolError]], None]


@dataclass(slots=True, eq=False)  # identity-hashed: items live in sets
class _Item(Generic[E, R]):
    entry: E
    size: int
    deadline: float
    future: asyncio.Future[R]


@dataclass(frozen=True, kw_only=True, slots=True)
class CoalescerLimits:
    """Batch bounds and retry timing of one coalescer."""

    max_entries: int = 10
    max_bytes: int = 262_144
    linger_s: float = 0.002
    #: While calls are in flight a partial batch waits up to one call's duration, capped here.
    max_linger_s: float = 0.02
    max_calls: int = 4
    deadline_s: float = 5.0
    backoff_s: float = 0.05
    max_backoff_s: float = 1.0


def _ignore(
    size: int, seconds: float, error: PoolError | None, entries: Sequence[PoolError]
) -> None:
    return None


class Coalescer(Generic[E, R]):
    """Batches entries for one queue and one action; each caller awaits its own result."""

    def __init__(
        self,
        call: BatchCall[E, R],
        limits: CoalescerLimits,
        observe: CallObserver = _ignore,
    ) -> None:
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

    async def submit(self, entry: E, size: int = 0, deadline_s: float | None = None) -> R:
        """Queue ``entry`` for the next batch and wait for its own result."""
        if self._closing or self._dead:
            raise PoolClosed("the pool is closing")
        budget = self._limits.deadline_s if deadline_s is None else deadline_s
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(entry, size, time.monotonic() + budget, future))
        self._wake.set()
        if len(self._pending) >= self._limits.max_entries:
            self._full.set()
        return await future

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
                    if len(self._pending) < self._limits.max_entries and not self._closing:
                        await self._gather_company()
                    while self._pending:
                        await self._slots.acquire()
                        calls.create_task(self._flush(self._take()))
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

    def _take(self) -> list[_Item[E, R]]:
        batch: list[_Item[E, R]] = []
        total = 0
        while self._pending and len(batch) < self._limits.max_entries:
            item = self._pending[0]
            if batch and total + item.size > self._limits.max_bytes:
                break
            self._pending.popleft()
            if item.future.done():  # its caller was cancelled before the send
                continue
            batch.append(item)
            total += item.size
        return batch

    async def _flush(self, batch: list[_Item[E, R]]) -> None:
        self._inflight.update(batch)
        self._calls += 1
        try:
            attempt = 0
            while batch:
                batch = await self._attempt(batch, attempt)
                attempt += 1
        finally:
            self._calls -= 1
            self._inflight.difference_update(batch)
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(PoolClosed("the pool closed during the call"))
            self._slots.release()

    async def _attempt(self, batch: list[_Item[E, R]], attempt: int) -> list[_Item[E, R]]:
        """One batch call; returns the entries to retry after a backoff sleep."""
        started = time.monotonic()
        deadline = max(item.deadline for item in batch)
        outcomes: Sequence[R | PoolError]
        try:
            async with asyncio.timeout_at(_loop_time(deadline)):
                outcomes = await self._call([item.entry for item in batch])
        except PoolError as exc:
            outcomes = [exc] * len(batch)
            self._observe(len(batch), time.monotonic() - started, exc, ())
        except TimeoutError:
            error = Unavailable("no answer before the deadline")
            outcomes = [error] * len(batch)
            self._observe(len(batch), time.monotonic() - started, error, ())
        else:
            failed = [o for o in outcomes if isinstance(o, PoolError)]
            took = time.monotonic() - started
            # A moving average of call durations (the first call sets it).
            self._call_s = took if not self._call_s else self._call_s + (took - self._call_s) / 8
            self._observe(len(batch), took, None, failed)
        retry: list[_Item[E, R]] = []
        delay = self._backoff(attempt)
        now = time.monotonic()
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():
                continue
            if not isinstance(outcome, PoolError):
                item.future.set_result(outcome)
            elif outcome.retriable and now + delay < item.deadline:
                retry.append(item)
            else:
                item.future.set_exception(outcome)
            self._inflight.discard(item)
        if retry:
            self._inflight.update(retry)
            await asyncio.sleep(delay)
        return retry

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._limits.max_backoff_s, self._limits.backoff_s * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)

    def _fail_all(self, error: PoolError) -> None:
        for item in [*self._pending, *self._inflight]:
            if not item.future.done():
                item.future.set_exception(error)
        self._pending.clear()
        self._inflight.clear()


def _loop_time(monotonic_deadline: float) -> float:
    """Convert a ``time.monotonic`` deadline to the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
