"""A provider's sending rate, as a token bucket shared by every shard of the process."""

import asyncio
import time

from core.envelope import Envelope
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
