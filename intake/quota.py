"""Per-API-key quotas: a token bucket per key, in this process, with IETF RateLimit headers.

Each API key (its name) may submit ``rate`` emails per second with bursts of ``burst``;
past that, intake answers ``429`` with ``Retry-After``, so that one producer cannot starve
the others. Every answer of ``/v1/emails*`` carries the headers of draft-ietf-httpapi-
ratelimit-headers-10: ``RateLimit-Policy: "emails";q=<burst>;w=<seconds to refill>`` and
``RateLimit: "emails";r=<remaining>;t=<seconds until full>``. Quotas are per process:
a global quota over N intake processes is ``rate / N`` each, as for provider rates.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

#: The name of the one policy the headers describe.
POLICY = "emails"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class Grant:
    """How many emails of a request the quota admits, and the headers to answer with."""

    admitted: int
    retry_after_s: int
    headers: dict[str, str]


class Quotas:
    """Token buckets by API key; ``rate`` 0 admits everything (and sends no headers)."""

    def __init__(
        self,
        rate: float,
        burst: int = 0,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self.burst = burst or max(1, math.ceil(rate))
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys

    @property
    def enabled(self) -> bool:
        """Whether any quota applies."""
        return self.rate > 0

    def take(self, key: str, count: int) -> Grant:
        """Admit up to ``count`` emails for ``key`` now: the first ``admitted`` of them."""
        if not self.enabled:
            return Grant(count, 0, {})
        now = self._clock()
        bucket = self._bucket(key, now)
        admitted = min(count, int(bucket.tokens))
        bucket.tokens -= admitted
        retry_after = 0
        if admitted < count:  # when the next one would be admitted
            retry_after = max(1, math.ceil((1 - bucket.tokens) / self.rate))
        return Grant(admitted, retry_after, self._headers(bucket))

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:  # keys are configured, but stay bounded
                self._buckets.clear()
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket

    def _headers(self, bucket: _Bucket) -> dict[str, str]:
        window = max(1, math.ceil(self.burst / self.rate))
        until_full = math.ceil((self.burst - bucket.tokens) / self.rate)
        return {
            "RateLimit-Policy": f'"{POLICY}";q={self.burst};w={window}',
            "RateLimit": f'"{POLICY}";r={int(bucket.tokens)};t={until_full}',
        }
