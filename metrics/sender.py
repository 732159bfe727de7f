"""Metrics of the sender: receives, outcomes, send latency, in-flight, end-to-end latency."""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core.events import TYPES as EVENT_TYPES
from metrics.pool import LATENCY_BUCKETS

END_TO_END_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

#: Every outcome a received message can have.
OUTCOMES = ("delivered", "retried", "dead_lettered", "released", "failed")
#: Every outcome of one provider send attempt.
SEND_OUTCOMES = ("delivered", "transient", "permanent", "error", "delayed")


class SenderMetrics:
    """The sender's seam to Prometheus."""

    def __init__(self, registry: CollectorRegistry, *, concurrency: int) -> None:
        self._received = Counter(
            "mailpool_messages_received",
            "Messages received from SQS, by shard.",
            ["shard"],
            registry=registry,
        )
        self._outcomes = Counter(
            "mailpool_messages_processed",
            "Received messages by shard and outcome "
            "(delivered, retried, dead_lettered, released, failed).",
            ["shard", "outcome"],
            registry=registry,
        )
        self._send_seconds = Histogram(
            "mailpool_provider_send_duration_seconds",
            "Provider send latency by provider and outcome.",
            ["provider", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._end_to_end = Histogram(
            "mailpool_end_to_end_duration_seconds",
            "From acceptance at intake to delivery by the provider, by stream.",
            ["stream"],
            buckets=END_TO_END_BUCKETS,
            registry=registry,
        )
        self._in_flight = Gauge(
            "mailpool_messages_in_flight",
            "Messages received and being worked on (not yet delivered, retried, released or "
            "dead-lettered); at most MAILPOOL_CONCURRENCY.",
            registry=registry,
        )
        self._limit = Gauge(
            "mailpool_messages_in_flight_limit",
            "The bound on messages in flight (MAILPOOL_CONCURRENCY).",
            registry=registry,
        )
        self._limit.set(concurrency)
        self._receive_errors = Counter(
            "mailpool_receive_errors",
            "Failed receive calls, by shard.",
            ["shard"],
            registry=registry,
        )
        self._queue = Gauge(
            "mailpool_queue_messages",
            "Approximate messages per shard by state (visible, in_flight, delayed, "
            "dead_lettered), from GetQueueAttributes polled on an interval.",
            ["shard", "state"],
            registry=registry,
        )
        self._oldest = Gauge(
            "mailpool_queue_oldest_message_age_seconds",
            "Approximate age of the oldest visible message per shard (0 when none is "
            "waiting): the autoscaling signal.",
            ["shard"],
            registry=registry,
        )
        self._stream_oldest = Gauge(
            "mailpool_stream_oldest_message_age_seconds",
            "Approximate age of the oldest visible message of each stream (the oldest of its "
            "shards): transactional's pages within a minute, bulk's within hours.",
            ["stream"],
            registry=registry,
        )
        self._lag = Histogram(
            "mailpool_receive_lag_seconds",
            "From SQS's SentTimestamp to the receive, per received message.",
            buckets=END_TO_END_BUCKETS,
            registry=registry,
        )
        self._published = Counter(
            "mailpool_events_published",
            "Delivery events put on the events queue, by type.",
            ["type"],
            registry=registry,
        )
        for event_type in EVENT_TYPES:
            self._published.labels(event_type)
        self._undeleted = Gauge(
            "mailpool_messages_undeleted",
            "Delivered messages whose delete has not landed yet; while above 0 the sender "
            "holds them (no second delivery) and receives nothing new.",
            registry=registry,
        )

    def prepare(self, shards: int, providers: Sequence[str], streams: Sequence[str] = ()) -> None:
        """Start every series whose labels are known at 0, so dashboards show 0, not gaps."""
        for stream in streams:
            self._end_to_end.labels(stream)
            self._stream_oldest.labels(stream)
        for shard in map(str, range(shards)):
            self._received.labels(shard)
            self._receive_errors.labels(shard)
            for outcome in OUTCOMES:
                self._outcomes.labels(shard, outcome)
        for provider in providers:
            for outcome in SEND_OUTCOMES:
                self._send_seconds.labels(provider, outcome)

    def published(self, event_type: str) -> None:
        """One event put on the events queue."""
        self._published.labels(event_type).inc()

    def undeleted(self, count: int) -> None:
        """Delivered messages whose delete is being retried."""
        self._undeleted.set(count)

    def received(self, shard: int, count: int) -> None:
        """``count`` messages received on ``shard``."""
        self._received.labels(str(shard)).inc(count)

    def lag(self, seconds: float) -> None:
        """One message received ``seconds`` after SQS took it."""
        self._lag.observe(max(0.0, seconds))

    def queue(self, shard: int, state: str, count: int) -> None:
        """The approximate number of messages of ``shard`` in ``state``."""
        self._queue.labels(str(shard), state).set(count)

    def oldest(self, shard: int, seconds: float) -> None:
        """The approximate age of ``shard``'s oldest waiting message."""
        self._oldest.labels(str(shard)).set(max(0.0, seconds))

    def receive_failed(self, shard: int) -> None:
        """A receive call on ``shard`` failed."""
        self._receive_errors.labels(str(shard)).inc()

    def outcome(self, shard: int, outcome: str) -> None:
        """A message on ``shard`` settled with ``outcome`` (one of OUTCOMES)."""
        self._outcomes.labels(str(shard), outcome).inc()

    def sent(self, provider: str, outcome: str, seconds: float) -> None:
        """One provider send attempt."""
        self._send_seconds.labels(provider, outcome).observe(seconds)

    def delivered_after(self, seconds: float, stream: str) -> None:
        """End-to-end latency of one delivered message of ``stream``."""
        self._end_to_end.labels(stream).observe(max(0.0, seconds))

    def stream_oldest(self, stream: str, seconds: float) -> None:
        """The approximate age of ``stream``'s oldest waiting message."""
        self._stream_oldest.labels(stream).set(max(0.0, seconds))

    def in_flight(self, count: int) -> None:
        """Messages currently being worked on."""
        self._in_flight.set(count)
