"""A sender's concurrency shared by streams: caps hold, weights decide, nothing idles."""

import asyncio

from pool.shares import Shares
from pool.streams import Stream, parse

TWO = (Stream("transactional", 2, weight=8), Stream("bulk", 2, weight=1, cap=0.75))


async def test_a_capped_stream_never_holds_more_than_its_cap() -> None:
    shares = Shares(100, TWO)
    bulk = shares.view("bulk")
    taken = [await bulk.take(10) for _ in range(7)]
    assert sum(taken) == 70
    assert await bulk.take(10) == 5  # 75 at most
    waiting = asyncio.ensure_future(bulk.take(10))
    await asyncio.sleep(0)
    assert not waiting.done()  # at its cap, with 25 free: they are transactional's
    assert await shares.view("transactional").take(10) == 10
    bulk.give(10)
    assert await waiting == 10
    shares.close()


async def test_with_both_waiting_the_lighter_stream_for_its_weight_goes_first() -> None:
    shares = Shares(20, TWO)
    transactional, bulk = shares.view("transactional"), shares.view("bulk")
    assert await bulk.take(10) == 10
    assert await transactional.take(10) == 10  # full
    order: list[str] = []

    async def wait(room: object, name: str) -> None:
        await room.take(1)  # type: ignore[attr-defined]
        order.append(name)

    waiters = [asyncio.ensure_future(wait(bulk, "bulk")) for _ in range(3)]
    waiters += [asyncio.ensure_future(wait(transactional, "transactional")) for _ in range(3)]
    await asyncio.sleep(0)
    for _ in range(6):  # slots come back one at a time
        bulk.give(1)
        await asyncio.sleep(0)
    await asyncio.gather(*waiters)
    # transactional holds 10 for weight 8, bulk 9 for weight 1: transactional first.
    assert order == ["transactional"] * 3 + ["bulk"] * 3


async def test_an_idle_streams_share_goes_to_the_others() -> None:
    shares = Shares(40, TWO)
    assert sum([await shares.view("transactional").take(10) for _ in range(4)]) == 40
    shares.close()
    assert await shares.view("bulk").take(10) == 0  # closed: every take answers 0


def test_streams_are_declared_name_shards_weight_cap() -> None:
    assert parse("transactional:2:8,bulk:3:1:0.5") == (
        Stream("transactional", 2, 8.0, 1.0), Stream("bulk", 3, 1.0, 0.5)
    )  # fmt: skip
    for bad in ("", "a", "Bulk:1", "a:0", "a:1:0", "a:1:1:2", "a:1,a:2"):
        try:
            parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was taken")
