"""A provider's sending rate, as a token bucket shared by every shard of the process, and
each stream's, ahead of it."""

import asyncio
import time
from collections.abc import Mapping

from core.envelope import Envelope
from pool.streams import Stream, check_names
from sender.providers.base import Accepted, Provider


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; ``take`` waits for one."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait until a token is free, then take it (callers are served in order)."""
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._stamp = time.monotonic()
                self._tokens = 1
            self._tokens -= 1


class RateLimited:
    """Wraps a provider so that it is never asked for more than ``rate`` messages/s."""

    def __init__(self, provider: Provider, rate: float) -> None:
        self.provider = provider
        self.name = provider.name
        self._bucket = TokenBucket(rate)

    async def send(self, envelope: Envelope) -> Accepted:
        """Wait for the rate, then send."""
        await self._bucket.take()
        return await self.provider.send(envelope)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.provider.aclose()


class StreamRated:
    """Wraps a provider so that each stream named in ``rates`` is sent at most that many
    messages/s (by this process): bulk can never take the provider rate transactional needs.

    A stream's sends wait on its own bucket before the provider's, so a bulk backlog queues
    here rather than in front of the provider's own rate (``RateLimited``), where
    transactional sends would wait behind it."""

    def __init__(self, provider: Provider, rates: Mapping[str, float], default: str) -> None:
        self.provider = provider
        self.name = provider.name
        self._buckets = {stream: TokenBucket(rate) for stream, rate in rates.items()}
        #: The stream of an envelope written before streams.
        self._default = default

    async def send(self, envelope: Envelope) -> Accepted:
        """Wait for the stream's rate, then send."""
        bucket = self._buckets.get(envelope.stream or self._default)
        if bucket is not None:
            await bucket.take()
        return await self.provider.send(envelope)

    async def aclose(self) -> None:
        """Close the wrapped provider."""
        await self.provider.aclose()


def stream_rated(
    provider: Provider, rates: tuple[tuple[str, float], ...], streams: tuple[Stream, ...]
) -> Provider:
    """``provider`` behind the pool's per-stream rates (``MAILPOOL_STREAM_RATES``), if any."""
    if not rates:
        return provider
    check_names((name for name, _ in rates), streams, "MAILPOOL_STREAM_RATES")
    return StreamRated(provider, dict(rates), streams[0].name)
