"""Queue depth and the age of the oldest waiting message, per shard, polled on an interval.

SQS reports the age of the oldest message only to CloudWatch, so it is derived here, as
an upper bound that never lags a real backlog:

- a FIFO receive returns the oldest receivable messages, so every message still waiting
  was sent after the newest message the sender has received from that shard (``head``);
- every message still waiting was sent after the last poll that found the shard empty.

So age <= now - max(head, last empty poll). With neither known (a sender that starts on a
backlog), the age counts from the poll that first saw it. An empty shard has age 0.
While a sender keeps up, head is recent and the age small; when it stalls, head stops
moving and the age grows second by second — the signal to scale senders on.
"""

import asyncio
import logging
import time

from aws.errors import AwsError
from metrics.sender import SenderMetrics
from pool.pool import QueuePool

log = logging.getLogger(__name__)

STATES = ("visible", "in_flight", "delayed", "dead_lettered")


class DepthPoller:
    """One collector for every shard: GetQueueAttributes each interval, never per scrape."""

    def __init__(self, pool: QueuePool, metrics: SenderMetrics, interval_s: float) -> None:
        self._pool = pool
        self._metrics = metrics
        self._interval_s = interval_s
        self._heads: dict[int, float] = {}
        self._empty_at: dict[int, float] = {}
        self._first_seen: dict[int, float] = {}

    def received(self, shard: int, sent_at: float) -> None:
        """The sender received a message SQS took at ``sent_at`` (epoch seconds)."""
        if sent_at > self._heads.get(shard, 0.0):
            self._heads[shard] = sent_at

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                await self.poll()
            except AwsError as exc:
                log.warning("queue depth poll failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self._interval_s)

    async def poll(self) -> None:
        """Poll every shard once and update the gauges."""
        now = time.time()
        config = self._pool.config
        streams = {stream.name: 0.0 for stream in config.all_streams}
        for depth in await self._pool.depth():
            shard = depth.shard
            for state in STATES:
                self._metrics.queue(shard, state, getattr(depth, state))
            age = self.age(shard, depth.visible, now)
            self._metrics.oldest(shard, age)
            name = config.stream_at(shard)[0].name
            streams[name] = max(streams[name], age)
        for name, age in streams.items():
            self._metrics.stream_oldest(name, age)

    def age(self, shard: int, visible: int, now: float) -> float:
        """The age estimate for a shard with ``visible`` waiting messages at ``now``."""
        if visible == 0:
            self._empty_at[shard] = now
            self._first_seen.pop(shard, None)
            return 0.0
        known = [t for t in (self._heads.get(shard), self._empty_at.get(shard)) if t is not None]
        anchor = max(known) if known else self._first_seen.setdefault(shard, now)
        return now - anchor
