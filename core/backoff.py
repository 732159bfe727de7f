"""The one backoff formula: exponential from ``base``, capped, jittered down by ``jitter``."""

import random


def backoff(attempt: int, base: float, cap: float, *, jitter: float = 0.2) -> float:
    """Seconds to wait before try ``attempt + 1`` (``attempt`` 0: the first retry).

    ``base * 2**attempt``, at most ``cap``, scaled by a random factor in ``[1 - jitter, 1]`` so
    that callers that failed together do not retry together.
    """
    ceiling: float = min(cap, base * 2.0 ** min(max(attempt, 0), 62))
    return ceiling * random.uniform(1.0 - jitter, 1.0)
