"""Metrics of the intake API: requests by route and status, latency, accept latency."""

from prometheus_client import CollectorRegistry, Counter, Histogram

from metrics.pool import LATENCY_BUCKETS

#: Why an email is refused: every error code intake can answer for an email (validation
#: codes included), so that each series exists at 0 before the first refusal.
REFUSAL_REASONS = (
    "invalid_json",
    "unsupported_media_type",
    "request_timeout",
    "invalid",
    "invalid_type",
    "invalid_address",
    "invalid_group",
    "invalid_header",
    "invalid_character",
    "header_injection",
    "reserved_header",
    "duplicate_header",
    "unknown_field",
    "too_many",
    "too_long",
    "required",
    "message_too_large",
    "rejected_by_queue",
    "unavailable",
    "overloaded",
    "in_doubt",
    "rate_limited",
)


class IntakeMetrics:
    """The intake's seam to Prometheus."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "mailpool_http_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=registry,
        )
        self._seconds = Histogram(
            "mailpool_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._accept = Histogram(
            "mailpool_accept_duration_seconds",
            "From a valid email to SQS's acknowledgement of it.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._accepted = Counter(
            "mailpool_emails_accepted",
            "Emails answered 202 (SQS has them).",
            registry=registry,
        )
        self._refused = Counter(
            "mailpool_emails_refused",
            "Emails not accepted, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REFUSAL_REASONS:
            self._refused.labels(reason)

    def request(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered."""
        self._requests.labels(route, str(status)).inc()
        self._seconds.labels(route).observe(seconds)

    def accepted(self, seconds: float) -> None:
        """One email acknowledged by SQS, ``seconds`` after validation."""
        self._accepted.inc()
        self._accept.observe(seconds)

    def refused(self, reason: str) -> None:
        """One email refused; ``reason`` is an error code (low cardinality)."""
        self._refused.labels(reason).inc()
