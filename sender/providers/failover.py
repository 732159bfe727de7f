"""Several providers in order of preference, each behind a circuit breaker.

A send goes to the first provider whose breaker is closed. A transient failure moves it
on to the next; ``threshold`` transient failures in a row open a provider's breaker for
``cooldown_s``, after which one trial send decides whether it closes again. A permanent
failure (the recipient or message was refused) is the message's fault, not the
provider's: it does not fail over and does not trip the breaker.
"""

import logging
import time
from collections.abc import Sequence

from core.breaker import Breaker
from core.envelope import Envelope
from sender.providers.base import Accepted, Provider, TransientError

log = logging.getLogger(__name__)


class Failover:
    """Delivers through the first healthy provider of ``providers``."""

    def __init__(
        self, providers: Sequence[Provider], *, threshold: int = 5, cooldown_s: float = 30.0
    ) -> None:
        if not providers:
            raise ValueError("failover needs at least one provider")
        self.providers = list(providers)
        self.name = "+".join(p.name for p in providers)
        self.breakers = [Breaker(threshold, cooldown_s) for _ in providers]

    async def send(self, envelope: Envelope) -> Accepted:
        """Send through the first available provider; fail over on transient errors."""
        now = time.monotonic()
        candidates = [
            (p, b) for p, b in zip(self.providers, self.breakers, strict=True) if b.available(now)
        ]
        if not candidates:  # every breaker open: try the one that reopens first
            breaker = min(self.breakers, key=lambda b: b.open_until)
            candidates = [(self.providers[self.breakers.index(breaker)], breaker)]
        last: TransientError | None = None
        for provider, breaker in candidates:
            try:
                accepted = await provider.send(envelope)
            except TransientError as exc:
                last = exc
                if breaker.failed(time.monotonic()):
                    log.warning(
                        "provider skipped for a cool-down",
                        extra={"provider": provider.name, "reason": exc.reason},
                    )
                continue
            breaker.succeeded()
            return accepted
        assert last is not None
        raise last

    async def aclose(self) -> None:
        """Close every provider."""
        for provider in self.providers:
            await provider.aclose()
