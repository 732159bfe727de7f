"""The coalescer: batching bounds, per-caller results, retries under a deadline, no hangs."""

import asyncio
from collections.abc import Sequence

import pytest

from aws.coalesce import Coalescer, CoalescerLimits
from aws.errors import (
    AwsError,
    Cancelled,
    NoAnswer,
    Overloaded,
    PoolClosed,
    Rejected,
    Throttled,
    Unavailable,
)


class Recorder:
    """A batch call that records its batches and answers from a script."""

    def __init__(self, script: list[object] | None = None) -> None:
        self.batches: list[list[str]] = []
        self.script = script or []

    async def __call__(self, entries: Sequence[str]) -> list[str | AwsError]:
        self.batches.append(list(entries))
        await asyncio.sleep(0)
        action = self.script.pop(0) if self.script else None
        if isinstance(action, AwsError):
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
    def first_fails(entry: str) -> str | AwsError:
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
    async def hang(entries: Sequence[str]) -> list[str | AwsError]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    coalescer: Coalescer[str, str] = Coalescer(hang, CoalescerLimits(deadline_s=0.2))
    [result] = await run_with(coalescer, "a")
    assert isinstance(result, Unavailable)


async def test_a_dead_flusher_fails_every_waiting_caller() -> None:
    started = asyncio.Event()

    async def hang(entries: Sequence[str]) -> list[str | AwsError]:
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

    async def slow(entries: Sequence[str]) -> list[str | AwsError]:
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

    async def slow(entries: Sequence[str]) -> list[str | AwsError]:
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


async def test_an_unexpected_exception_fails_only_that_call_and_the_next_one_goes_out() -> None:
    def broken(entry: str) -> str:
        raise KeyError("Id")  # what a malformed answer does to the parsing

    call = Recorder([broken])
    coalescer = Coalescer(call, CoalescerLimits(deadline_s=0.05, backoff_s=0.2), action="Send")
    runner = asyncio.create_task(coalescer.run())
    try:
        with pytest.raises(NoAnswer, match=r"^Send: unexpected KeyError$"):
            await coalescer.submit("a")  # too short a deadline to be retried
        assert await coalescer.submit("b", deadline_s=5) == "ok:b"
    finally:
        coalescer.close()
        await runner
    assert call.batches == [["a"], ["b"]]


async def test_a_broken_observer_never_decides_an_entry_s_fate() -> None:
    def observe(size: int, took: float, error: object, failed: object) -> None:
        raise RuntimeError("observer bug")

    coalescer = Coalescer(Recorder(), CoalescerLimits(), observe)
    assert await run_with(coalescer, "a", "b") == ["ok:a", "ok:b"]


async def test_an_entry_whose_deadline_passed_while_waiting_is_never_sent() -> None:
    release = asyncio.Event()
    sent: list[list[str]] = []

    async def held(entries: Sequence[str]) -> list[str | AwsError]:
        sent.append(list(entries))
        await release.wait()
        return [f"ok:{e}" for e in entries]

    limits = CoalescerLimits(max_calls=1, linger_s=0, deadline_s=60)
    coalescer: Coalescer[str, str] = Coalescer(held, limits, action="Send")
    runner = asyncio.create_task(coalescer.run())
    try:
        first = asyncio.create_task(coalescer.submit("first"))
        await asyncio.sleep(0.05)  # the only call slot is taken by "first"
        late = asyncio.create_task(coalescer.submit("late", deadline_s=0.1))
        await asyncio.sleep(0.3)
        release.set()
        assert await first == "ok:first"
        with pytest.raises(Unavailable, match="deadline passed before it was sent"):
            await late
    finally:
        coalescer.close()
        await runner
    assert sent == [["first"]]


async def test_a_call_under_way_at_the_deadline_is_waited_for_within_the_margin() -> None:
    async def slow(entries: Sequence[str]) -> list[str | AwsError]:
        await asyncio.sleep(0.3)
        return [f"ok:{e}" for e in entries]

    patient = Coalescer(slow, CoalescerLimits(deadline_s=0.1, answer_margin_s=1.0))
    assert await run_with(patient, "a") == ["ok:a"]  # stored, so never a 503
    hasty = Coalescer(slow, CoalescerLimits(deadline_s=0.1, answer_margin_s=0.05))
    [result] = await run_with(hasty, "a")
    assert isinstance(result, NoAnswer)  # no answer at all: in doubt, and said so


async def test_an_entry_that_once_got_no_answer_ends_in_doubt_whatever_came_after() -> None:
    attempts = 0

    async def unanswered_then_throttled(entries: Sequence[str]) -> list[str | AwsError]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise NoAnswer("Send: ReadTimeoutError")  # it may have been stored
        raise Throttled("slow down")  # refused: says nothing about the first attempt

    limits = CoalescerLimits(deadline_s=0.2, backoff_s=0.02)
    [result] = await run_with(Coalescer(unanswered_then_throttled, limits), "a")
    assert isinstance(result, NoAnswer)
    assert attempts > 2


async def test_throttled_calls_hold_back_the_next_ones_so_batches_fill() -> None:
    sizes: list[int] = []

    async def quota(entries: Sequence[str]) -> list[str | AwsError]:
        sizes.append(len(entries))
        if len(sizes) % 2:  # every other call is refused for rate
            raise Throttled("ThrottlingException")
        return [f"ok:{e}" for e in entries]

    limits = CoalescerLimits(linger_s=0, backoff_s=0.05, deadline_s=5)
    coalescer: Coalescer[str, str] = Coalescer(quota, limits)
    runner = asyncio.create_task(coalescer.run())
    try:
        waiting = []
        for i in range(40):  # a steady trickle, one entry every 5 ms
            waiting.append(asyncio.create_task(coalescer.submit(f"m{i}")))
            await asyncio.sleep(0.005)
        results = await asyncio.gather(*waiting)
    finally:
        coalescer.close()
        await runner
    assert results == [f"ok:m{i}" for i in range(40)]
    # A throttled call holds the next ones back: the trickle gathers into fuller batches
    # instead of a call per entry.
    assert len(sizes) < 20
    assert max(sizes) >= 5


async def test_entries_cancelled_for_another_s_sake_go_again_at_once_and_hold_nobody_back() -> None:
    # An all-or-nothing call (a transaction): "taken" fails, the others are cancelled with it.
    def all_or_nothing(entry: str) -> str | AwsError:
        return Rejected("taken") if entry == "taken" else Cancelled("cancelled with others")

    call = Recorder([all_or_nothing])
    # A throttle's backoff here (5-10 s) would outlast every deadline (2 s): entries held
    # back by it would fail; cancelled ones must not be held back at all.
    limits = CoalescerLimits(linger_s=0.01, backoff_s=10, max_backoff_s=10, deadline_s=2)
    coalescer: Coalescer[str, str] = Coalescer(call, limits)
    runner = asyncio.create_task(coalescer.run())
    try:
        first = await asyncio.gather(
            *(coalescer.submit(e) for e in ("a", "taken", "b")), return_exceptions=True
        )
        later = await coalescer.submit("c")
    finally:
        coalescer.close()
        await runner
    assert first[0] == "ok:a"
    assert isinstance(first[1], Rejected)
    assert first[2] == "ok:b"
    assert later == "ok:c"
    assert call.batches == [["a", "taken", "b"], ["a", "b"], ["c"]]


async def test_overload_is_refused_at_once_and_capacity_still_serves() -> None:
    sent: set[str] = set()

    async def paced(entries: Sequence[str]) -> list[str | AwsError]:
        sent.update(entries)
        await asyncio.sleep(0.05)  # one call at a time: 200 entries/s at most
        return [f"ok:{e}" for e in entries]

    limits = CoalescerLimits(max_calls=1, linger_s=0, deadline_s=1.0, shed=True)
    coalescer: Coalescer[str, str] = Coalescer(paced, limits)
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(coalescer.run())

    async def timed(entry: str) -> tuple[str | BaseException, float, str]:
        started = loop.time()
        try:
            return await coalescer.submit(entry), loop.time() - started, entry
        except (Overloaded, Unavailable) as exc:
            return exc, loop.time() - started, entry

    try:
        # Offered: 2,000 entries/s for 1 s, ten times what the call can take.
        waves = []
        for wave in range(20):
            waves += [asyncio.create_task(timed(f"m{wave}-{i}")) for i in range(100)]
            await asyncio.sleep(0.05)
        results = await asyncio.gather(*waves)
    finally:
        coalescer.close()
        await runner
    accepted = [took for result, took, _ in results if isinstance(result, str)]
    refused = [entry for result, _, entry in results if isinstance(result, Overloaded)]
    expired = [
        took
        for result, took, _ in results
        if isinstance(result, Unavailable) and not isinstance(result, Overloaded)
    ]
    assert len(accepted) + len(refused) + len(expired) == 2000
    # Every answer within the deadline and its margin. Admission is an estimate, so on a
    # starved machine (the suite runs beside other tests) a few admitted entries may still
    # reach their deadline; they are answered then, and stay a small share (30 for 236
    # accepted in one starved suite run; without shedding, about four times the accepted).
    assert max(accepted + expired) < limits.deadline_s + limits.answer_margin_s
    assert len(expired) <= 0.25 * len(accepted)
    assert refused
    assert not sent & set(refused)  # refused before any work: never in a call
    assert len(accepted) >= 0.8 * 200 * 1.0  # goodput holds near the call's capacity


async def test_the_backlog_is_bounded_whatever_the_rate() -> None:
    never = asyncio.Event()

    async def hang(entries: Sequence[str]) -> list[str | AwsError]:
        await never.wait()
        raise AssertionError("unreachable")

    limits = CoalescerLimits(max_calls=1, deadline_s=0.2, shed=True, max_backlog=5)
    coalescer: Coalescer[str, str] = Coalescer(hang, limits)
    runner = asyncio.create_task(coalescer.run())
    try:
        waiting = [asyncio.create_task(coalescer.submit(f"m{i}")) for i in range(5)]
        await asyncio.sleep(0)
        assert coalescer.backlog == 5
        with pytest.raises(Overloaded):
            await coalescer.submit("one too many")
    finally:
        coalescer.close()
        await asyncio.gather(*waiting, return_exceptions=True)
        await runner


async def test_a_fresh_queue_takes_a_whole_batch_request_before_it_has_a_rate() -> None:
    async def quick(entries: Sequence[str]) -> list[str | AwsError]:
        await asyncio.sleep(0.005)
        return [f"ok:{e}" for e in entries]

    limits = CoalescerLimits(max_entries=10, max_calls=4, deadline_s=3.0, shed=True)
    coalescer: Coalescer[str, str] = Coalescer(quick, limits)
    runner = asyncio.create_task(coalescer.run())
    try:
        # A 500-email batch over two shards, the first work this process does.
        results = await asyncio.gather(
            *(coalescer.submit(f"m{i}") for i in range(250)), return_exceptions=True
        )
    finally:
        coalescer.close()
        await runner
    assert [r for r in results if isinstance(r, BaseException)] == []
