"""The sender's byte budget for bodies carried through S3."""

import asyncio

from sender.budget import ByteBudget


async def test_holders_wait_while_their_bytes_would_pass_the_limit() -> None:
    budget = ByteBudget(100)
    peak = 0
    done: list[str] = []

    async def hold(name: str, size: int) -> None:
        nonlocal peak
        async with budget.hold(size):
            peak = max(peak, budget.held)
            await asyncio.sleep(0.01)
            done.append(name)

    await asyncio.gather(*(hold(f"h{i}", 40) for i in range(6)))
    assert peak == 80  # two at a time: a third would make 120
    assert len(done) == 6
    assert budget.held == 0


async def test_a_body_larger_than_the_whole_budget_still_goes_alone() -> None:
    budget = ByteBudget(100)
    async with budget.hold(30):
        waiting = asyncio.create_task(asyncio.wait_for(_hold(budget, 500), 1.0))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # not beside another holder
    assert await waiting == 500  # but alone, never stuck


async def test_a_cancelled_holder_gives_its_bytes_back() -> None:
    budget = ByteBudget(100)
    entered = asyncio.Event()

    async def stuck() -> None:
        async with budget.hold(90):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert budget.held == 0
    assert await asyncio.wait_for(_hold(budget, 90), 1.0) == 90


async def _hold(budget: ByteBudget, size: int) -> int:
    async with budget.hold(size):
        return budget.held
