"""Metrics of the webhooks dispatcher: attempts by endpoint and outcome, latency, endpoint
state, dead-lettered deliveries. Endpoint names are the operator's, so bounded."""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from metrics.pool import LATENCY_BUCKETS

#: Every outcome of one attempt.
ATTEMPT_OUTCOMES = ("delivered", "failed", "timeout", "refused", "gone", "skipped")
#: Every state an endpoint can be in.
STATES = ("enabled", "open", "disabled")


class WebhookMetrics:
    """The dispatcher's seam to Prometheus."""

    def __init__(self, registry: CollectorRegistry, endpoints: Sequence[str]) -> None:
        self._attempts = Counter(
            "mailpool_webhook_attempts",
            "Webhook delivery attempts by endpoint and outcome (delivered: 2xx; failed: other "
            "status or connection error; timeout; refused: a forbidden address; gone: 410; "
            "skipped: circuit open, postponed without a request).",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self._seconds = Histogram(
            "mailpool_webhook_attempt_duration_seconds",
            "Webhook attempt latency by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._state = Gauge(
            "mailpool_webhook_endpoint_state",
            "1 for each endpoint's current state (enabled, open: circuit open, disabled: 410).",
            ["endpoint", "state"],
            registry=registry,
        )
        self._dead = Counter(
            "mailpool_webhook_dead_lettered",
            "Deliveries given up after the whole retry schedule, by endpoint (in the events "
            "DLQ for `mailpool webhooks redrive`).",
            ["endpoint"],
            registry=registry,
        )
        self._received = Counter(
            "mailpool_events_received",
            "Events taken from the events queue (originals and per-endpoint retries).",
            registry=registry,
        )
        for name in endpoints:
            for outcome in ATTEMPT_OUTCOMES:
                self._attempts.labels(name, outcome)
            self._seconds.labels(name)
            self._dead.labels(name)
            self.state(name, "enabled")

    def attempt(self, endpoint: str, outcome: str, seconds: float) -> None:
        """One attempt (or a skip) for ``endpoint``."""
        self._attempts.labels(endpoint, outcome).inc()
        if outcome != "skipped":
            self._seconds.labels(endpoint).observe(seconds)

    def state(self, endpoint: str, state: str) -> None:
        """``endpoint`` is now in ``state``."""
        for each in STATES:
            self._state.labels(endpoint, each).set(1 if each == state else 0)

    def dead_lettered(self, endpoint: str) -> None:
        """A delivery to ``endpoint`` exhausted the schedule."""
        self._dead.labels(endpoint).inc()

    def received(self, count: int) -> None:
        """``count`` messages taken from the events queue."""
        self._received.inc(count)
