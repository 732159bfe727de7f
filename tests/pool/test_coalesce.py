"""The coalescer: batching bounds, per-caller results, retries under a deadline, no hangs."""

import asyncio
from collections.abc import Sequence

import pytest

from pool.coalesce import Coalescer, CoalescerLimits
from pool.errors import PoolClosed, PoolError, Rejected, Throttled, Unavailable


class Recorder:
    """A batch call that records its batches and answers from a script."""

    def __init__(self, script: list[object] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.script = script or []

    async def __call__(self, entries: Sequence[str]) -> list[str | PoolError]:
        self.batches.append(list(entries))
        await asyncio.sleep(0)
        action = self.script.pop(0) if self.script else None
        if isinstance(action, PoolError):
            raise action
        if callable(action):
            return [action(e) for e in entries]
        return [f"ok:{e}" for e in entries]


async def run_with(coalescer: Coalescer[str, str], *entries: str) -> list[str | BaseException]:
    runner = asyncio.create_task(coalescer.run())
    try:
        return await asyncio.gather(
            *(coalescer.submit(e, size=len(e)) for e in entries), return_exceptions=True
        )
    finally:
        coalescer.close()
        await runner


async def test_concurrent_callers_share_batches_of_at_most_ten() -> None:
    call = Recorder()
    coalescer = Coalescer(call, CoalescerLimits(linger_s=0.01))
    results = await run_with(coalescer, *(f"m{i}" for i in range(25)))
    assert results == [f"ok:m{i}" for i in range(25)]
    assert [len(b) for b in call.batches] == [10, 10, 5]
    assert [e for b in call.batches for e in b] == [f"m{i}" for i in range(25)]


async def test_batches_respect_the_byte_limit() -> None:
    call = Recorder()
    coalescer = Coalescer(call, CoalescerLimits(linger_s=0.01, max_bytes=10))
    await run_with(coalescer, "aaaa", "bbbb", "cccc", "dddddddddddd")
    assert call.batches == [["aaaa", "bbbb"], ["cccc"], ["dddddddddddd"]]


async def test_failed_entries_are_retried_until_they_succeed() -> None:
    def first_fails(entry: str) -> str | PoolError:
        return Throttled("slow down") if entry == "a" else f"ok:{entry}"

    call = Recorder([first_fails, Unavailable("5xx")])
    coalescer = Coalescer(call, CoalescerLimits(linger_s=0.01, backoff_s=0.001))
    assert await run_with(coalescer, "a", "b") == ["ok:a", "ok:b"]
    assert call.batches == [["a", "b"], ["a"], ["a"]]


async def test_rejected_entries_fail_at_once_without_retry() -> None:
    call = Recorder([lambda e: Rejected("bad") if e == "a" else f"ok:{e}"])
    coalescer = Coalescer(call, CoalescerLimits(linger_s=0.01))
    results = await run_with(coalescer, "a", "b")
    assert isinstance(results[0], Rejected)
    assert results[1] == "ok:b"
    assert len(call.batches) == 1


async def test_retries_stop_at_the_deadline_with_the_last_error() -> None:
    call = Recorder([Throttled("slow down")] * 1000)
    coalescer = Coalescer(call, CoalescerLimits(deadline_s=0.2, backoff_s=0.01))
    loop = asyncio.get_running_loop()
    started = loop.time()
    [result] = await run_with(coalescer, "a")
    assert isinstance(result, Throttled)
    # It gives up once the next backoff would overrun the deadline: before 0.2 s, not long after.
    assert 0.02 < loop.time() - started < 0.5
    assert len(call.batches) > 2


async def test_a_call_that_never_answers_fails_at_the_deadline() -> None:
    async def hang(entries: Sequence[str]) -> list[str | PoolError]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    coalescer: Coalescer[str, str] = Coalescer(hang, CoalescerLimits(deadline_s=0.2))
    [result] = await run_with(coalescer, "a")
    assert isinstance(result, Unavailable)


async def test_a_dead_flusher_fails_every_waiting_caller() -> None:
    started = asyncio.Event()

    async def hang(entries: Sequence[str]) -> list[str | PoolError]:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    coalescer: Coalescer[str, str] = Coalescer(hang, CoalescerLimits(max_calls=1, deadline_s=60))
    runner = asyncio.create_task(coalescer.run())
    callers = [asyncio.create_task(coalescer.submit(f"m{i}")) for i in range(15)]
    await started.wait()
    runner.cancel()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, PoolClosed) for r in results)
    with pytest.raises(PoolClosed):
        await coalescer.submit("late")


async def test_close_settles_what_is_pending_then_refuses_more() -> None:
    call = Recorder()
    coalescer = Coalescer(call, CoalescerLimits(linger_s=0.05))
    runner = asyncio.create_task(coalescer.run())
    pending = [asyncio.create_task(coalescer.submit(f"m{i}")) for i in range(3)]
    await asyncio.sleep(0)
    coalescer.close()
    assert await asyncio.gather(*pending) == ["ok:m0", "ok:m1", "ok:m2"]
    await runner
    with pytest.raises(PoolClosed):
        await coalescer.submit("late")


async def test_calls_in_flight_are_bounded() -> None:
    in_flight = 0
    peak = 0

    async def slow(entries: Sequence[str]) -> list[str | PoolError]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return list(entries)

    coalescer: Coalescer[str, str] = Coalescer(slow, CoalescerLimits(max_calls=2, linger_s=0))
    await run_with(coalescer, *(f"m{i}" for i in range(60)))
    assert peak == 2


async def test_a_batch_that_fills_goes_at_once_without_its_linger() -> None:
    call = Recorder()
    coalescer = Coalescer(call, CoalescerLimits(linger_s=30.0))
    runner = asyncio.create_task(coalescer.run())
    try:
        first = asyncio.create_task(coalescer.submit("m0"))
        await asyncio.sleep(0.01)  # the flusher is lingering for company now
        async with asyncio.timeout(5):  # far below the 30 s linger
            rest = await asyncio.gather(*(coalescer.submit(f"m{i}") for i in range(1, 10)))
            results = [await first, *rest]
    finally:
        coalescer.close()
        await runner
    assert results == [f"ok:m{i}" for i in range(10)]
    assert [len(b) for b in call.batches] == [10]


async def test_while_a_call_is_in_flight_a_small_batch_waits_up_to_a_call_for_company() -> None:
    sizes: list[int] = []

    async def slow(entries: Sequence[str]) -> list[str | PoolError]:
        sizes.append(len(entries))
        await asyncio.sleep(0.5)
        return [f"ok:{e}" for e in entries]

    coalescer = Coalescer(slow, CoalescerLimits(linger_s=0.001, max_linger_s=2.0))
    runner = asyncio.create_task(coalescer.run())
    try:
        await coalescer.submit("first")  # alone, nothing in flight: after the short linger
        second = asyncio.create_task(coalescer.submit("second"))  # the call in flight next
        await asyncio.sleep(0.1)
        third = asyncio.create_task(coalescer.submit("third"))  # would overtake it alone...
        await asyncio.sleep(0.1)
        fourth = asyncio.create_task(coalescer.submit("fourth"))  # ...but waits for company
        await asyncio.gather(second, third, fourth)
    finally:
        coalescer.close()
        await runner
    assert sizes == [1, 1, 2]
