"""Per-queue, per-action call quotas, answered with SQS's throttling error when exceeded."""

import random
import time
from dataclasses import dataclass

from localsqs.errors import SqsError

#: Actions that share one quota (a batch call counts against its single-message action).
_FAMILIES = {
    "SendMessage": "SendMessage",
    "SendMessageBatch": "SendMessage",
    "ReceiveMessage": "ReceiveMessage",
    "DeleteMessage": "DeleteMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibility": "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class Throttle:
    """Token buckets of ``rate`` calls/s (burst ``rate``) per queue and action; 0 disables.

    ``entry_faults`` is fault injection for testing clients: that fraction of
    SendMessageBatch entries fails with RequestThrottled while the rest succeed, the
    partial failure a client must retry entry by entry.
    """

    def __init__(self, rate: float = 0.0, entry_faults: float = 0.0) -> None:
        self.rate = rate
        self.entry_faults = entry_faults
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def entry_throttled(self) -> bool:
        """Whether to fail one batch entry (see ``entry_faults``)."""
        return self.entry_faults > 0 and random.random() < self.entry_faults

    def check(self, queue_url: str, action: str) -> None:
        """Take one call from the bucket, or raise ThrottlingException."""
        if self.rate <= 0:
            return
        family = _FAMILIES.get(action)
        if family is None:
            return
        key = (queue_url.rstrip("/").rsplit("/", 1)[-1], family)
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.rate, now)
        bucket.tokens = min(self.rate, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            raise SqsError(
                "ThrottlingException",
                f"Rate exceeded: {family} is limited to {self.rate:g} calls per second per queue.",
            )
        bucket.tokens -= 1
