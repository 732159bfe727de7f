"""The provider protocol: one ``send``, one ``aclose``; failures say whether to retry.

DeliveryError
├── TransientError     retry later (connection trouble, 4xx); each retry spends one of the
│   │                  message's receives toward the DLQ
│   └── DelayError     the provider asks to slow down (SES throttling, SMTP 421/454): the
│                      sender waits and retries while holding the message, spending nothing
└── PermanentError     never succeeds (5xx for every recipient, message refused): DLQ now
"""

from typing import Protocol

from mailpool.envelope import Envelope


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
    """Will never succeed: the provider refused every recipient or the message itself."""


class Provider(Protocol):
    """Delivers envelopes; ``name`` labels its metrics."""

    name: str

    async def send(self, envelope: Envelope) -> None:
        """Deliver ``envelope`` or raise TransientError/PermanentError."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
