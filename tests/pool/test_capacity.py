"""The in-flight bound: taken before a receive, handed out first come, first served."""

import asyncio

from pool.capacity import Capacity


async def test_a_loop_that_gives_back_and_asks_again_queues_behind_the_waiting_ones() -> None:
    capacity = Capacity(1)
    assert await capacity.take(10) == 1  # shard 0's loop holds the only slot
    waiting = asyncio.create_task(capacity.take(10))  # shard 1's loop waits for it
    await asyncio.sleep(0)
    capacity.give(1)  # shard 0's receive came back empty...
    again = asyncio.create_task(capacity.take(10))  # ...and it asks again at once
    assert await waiting == 1  # shard 1 gets its turn
    assert not again.done()
    capacity.give(1)
    assert await again == 1


async def test_a_receive_waits_until_enough_slots_are_free() -> None:
    capacity = Capacity(20)
    assert await capacity.take(15) == 15
    waiting = asyncio.create_task(capacity.take(10, least=8))
    capacity.give(2)
    await asyncio.sleep(0)
    assert not waiting.done()  # 7 free: not yet
    capacity.give(1)
    assert await waiting == 8  # at least 8, at most 10: all that is free
    assert capacity.free == 0


async def test_close_answers_every_waiter_with_nothing() -> None:
    capacity = Capacity(1)
    await capacity.take(1)
    waiters = [asyncio.create_task(capacity.take(1)) for _ in range(3)]
    await asyncio.sleep(0)
    capacity.close()
    assert await asyncio.gather(*waiters) == [0, 0, 0]
    assert await capacity.take(1) == 0


async def test_a_cancelled_waiter_loses_no_slot() -> None:
    capacity = Capacity(2)
    await capacity.take(2)
    first = asyncio.create_task(capacity.take(2))
    second = asyncio.create_task(capacity.take(2))
    await asyncio.sleep(0)
    capacity.give(2)  # handed to the first waiter...
    first.cancel()  # ...which is cancelled before it runs: the slots go on to the next
    assert await second == 2
    capacity.give(2)
    assert capacity.free == capacity.limit
    await asyncio.wait_for(capacity.drained(), 1)
