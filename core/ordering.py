"""Group order: items of one group go one after another; the first failure stops the rest."""

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def chains(items: Iterable[T], group: Callable[[T], K]) -> dict[K, list[T]]:
    """``items`` by group, each group's in the order given."""
    grouped: dict[K, list[T]] = {}
    for item in items:
        grouped.setdefault(group(item), []).append(item)
    return grouped


async def until_failure(chain: Sequence[T], step: Callable[[T], Awaitable[bool]]) -> list[T]:
    """Run ``step`` on each item in order until one returns False; the items after it,
    which were not started (an empty list when every step succeeded)."""
    for position, item in enumerate(chain):
        if not await step(item):
            return list(chain[position + 1 :])
    return []
