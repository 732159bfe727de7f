"""Metrics of the queue pool: SQS calls by action, shard and outcome; batch sizes; enqueues."""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram

from aws.coalesce import CallObserver
from aws.errors import (
    AwsError,
    Misconfigured,
    PoolClosed,
    QueueMissing,
    Rejected,
    Throttled,
)

#: Every outcome label of an SQS call (see ``outcome_of``).
OUTCOMES = ("ok", "throttled", "closed", "rejected", "missing", "misconfigured", "unavailable")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25)


def outcome_of(error: AwsError | None) -> str:
    """Low-cardinality outcome label of an SQS call."""
    if error is None:
        return "ok"
    for kind, label in (
        (Throttled, "throttled"),
        (PoolClosed, "closed"),
        (Rejected, "rejected"),
        (QueueMissing, "missing"),
        (Misconfigured, "misconfigured"),
    ):
        if isinstance(error, kind):
            return label
    return "unavailable"


class PoolMetrics:
    """The pool's seam to Prometheus; one per process, on that process's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._calls = Counter(
            "mailpool_sqs_calls",
            "SQS API calls by action, shard and outcome.",
            ["action", "shard", "outcome"],
            registry=registry,
        )
        self._seconds = Histogram(
            "mailpool_sqs_call_duration_seconds",
            "SQS API call latency by action.",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._entries = Histogram(
            "mailpool_sqs_batch_entries",
            "Entries per SQS batch call by action.",
            ["action"],
            buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
            registry=registry,
        )
        self._entry_failures = Counter(
            "mailpool_sqs_entry_failures",
            "Batch entries that failed inside a successful batch call, by action, shard and "
            "outcome (each is retried while its deadline allows).",
            ["action", "shard", "outcome"],
            registry=registry,
        )
        self._enqueued = Counter(
            "mailpool_messages_enqueued",
            "Messages SQS acknowledged, by shard.",
            ["shard"],
            registry=registry,
        )
        self._offloaded = Counter(
            "mailpool_messages_offloaded",
            "Message bodies past the queue's size limit that went to S3 behind a pointer.",
            registry=registry,
        )

    def observer(self, action: str, shard: int | str) -> CallObserver:
        """A callback that records each call of ``action`` on ``shard`` (its series start at 0)."""
        seconds = self._seconds.labels(action)
        entries = self._entries.labels(action)
        calls = self._calls
        entry_failures = self._entry_failures
        label = str(shard)
        for outcome in OUTCOMES:
            calls.labels(action, label, outcome)
            entry_failures.labels(action, label, outcome)
        self._enqueued.labels(label)

        def observe(
            size: int, elapsed: float, error: AwsError | None, failed: Sequence[AwsError]
        ) -> None:
            calls.labels(action, label, outcome_of(error)).inc()
            seconds.observe(elapsed)
            if size:
                entries.observe(size)
            for entry_error in failed:
                entry_failures.labels(action, label, outcome_of(entry_error)).inc()

        return observe

    def enqueued(self, shard: int) -> None:
        """One message acknowledged by SQS on ``shard``."""
        self._enqueued.labels(str(shard)).inc()

    def offloaded(self) -> None:
        """One body put in S3 instead of the queue."""
        self._offloaded.inc()
