"""The provider protocol: one ``send``, one ``aclose``; failures say whether to retry.

DeliveryError
├── TransientError     retry later (connection trouble, 4xx); each retry spends one of the
│   │                  message's receives toward the DLQ
│   └── DelayError     the provider asks to slow down (SES throttling, SMTP 421/454): the
│                      sender waits and retries while holding the message, spending nothing
└── PermanentError     never succeeds (5xx for every recipient, message refused): DLQ now
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.envelope import Envelope


@dataclass(frozen=True, slots=True)
class Refusal:
    """One recipient the provider refused: its position in to + cc + bcc, and the codes."""

    position: int
    code: int
    #: The enhanced status code (RFC 3463, "5.1.1"), when the reply carried one.
    enhanced: str | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """The provider took the email for every recipient except ``refused``."""

    refused: tuple[Refusal, ...] = ()


def refusals(
    recipients: Sequence[str], by_address: dict[str, tuple[int, str | None]]
) -> tuple[Refusal, ...]:
    """Refusals by position for replies keyed by address (an address listed twice counts
    at every position)."""
    return tuple(
        Refusal(position, *by_address[address])
        for position, address in enumerate(recipients)
        if address in by_address
    )


class DeliveryError(Exception):
    """A send that did not deliver; ``reason`` is a short code safe to log (no PII)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransientError(DeliveryError):
    """Worth retrying later: connection trouble, 4xx, throttling."""


class DelayError(TransientError):
    """The provider throttles: retry after a pause, without counting a failed attempt."""


class PermanentError(DeliveryError):
    """Will never succeed: the provider refused every recipient (``refused`` says how) or
    the message itself (``refused`` empty)."""

    def __init__(self, reason: str, refused: tuple[Refusal, ...] = ()) -> None:
        super().__init__(reason)
        self.refused = refused


class Provider(Protocol):
    """Delivers envelopes; ``name`` labels its metrics."""

    name: str

    async def send(self, envelope: Envelope) -> Accepted:
        """Deliver ``envelope`` (to some recipients at least) or raise TransientError or
        PermanentError."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
