"""Metrics of the state store: DynamoDB calls by action and outcome, and items they carried
(what a store call costs per email is these over the emails sent)."""

from prometheus_client import CollectorRegistry, Counter

#: The DynamoDB actions mailpool calls.
ACTIONS = ("BatchGetItem", "BatchWriteItem", "GetItem", "PutItem", "DeleteItem", "Query")


class StateMetrics:
    """The state table's seam to Prometheus."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._calls = Counter(
            "mailpool_state_calls",
            "DynamoDB calls to the state table by action and outcome (ok, error).",
            ["action", "outcome"],
            registry=registry,
        )
        self._items = Counter(
            "mailpool_state_items",
            "Items (keys read, items written) carried by state table calls, by action.",
            ["action"],
            registry=registry,
        )
        for action in ACTIONS:
            for outcome in ("ok", "error"):
                self._calls.labels(action, outcome)
            self._items.labels(action)

    def call(self, action: str, items: int, ok: bool) -> None:
        """One call of ``action`` carrying ``items``."""
        self._calls.labels(action, "ok" if ok else "error").inc()
        if ok:
            self._items.labels(action).inc(items)
