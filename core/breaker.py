"""A circuit breaker: after ``threshold`` failures in a row, skip for ``cooldown_s``, then
let one trial decide."""

from dataclasses import dataclass


@dataclass(slots=True)
class Breaker:
    """Consecutive failures of one provider or endpoint, and until when it is skipped."""

    threshold: int
    cooldown_s: float
    failures: int = 0
    open_until: float = 0.0

    def available(self, now: float) -> bool:
        """Closed, or open long enough for a trial."""
        return now >= self.open_until

    def failed(self, now: float) -> bool:
        """Count a transient failure; True if that opened the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown_s
            return True
        return False

    def succeeded(self) -> None:
        """A call went through: close."""
        self.failures = 0
        self.open_until = 0.0
