"""State: the table and what is built on it, opened together by a process."""

import types
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from core.events import Event
from core.health import Health
from metrics.state import StateMetrics
from state import status
from state.config import StateConfig
from state.suppressions import Suppressions, caused_by
from state.table import StateTable


class State:
    """The state table with its suppression list; ``record`` writes what events tell."""

    def __init__(
        self,
        config: StateConfig,
        health: Health | None = None,
        metrics: StateMetrics | None = None,
    ) -> None:
        self.config = config
        self.table = StateTable(config, health, metrics)
        self.suppressions = Suppressions(self.table, config.suppression_cache_s)

    @classmethod
    def of_process(
        cls, config: StateConfig | None, health: Health, registry: CollectorRegistry
    ) -> "State | None":
        """A process's state store, its metrics in the process's ``registry``, when
        ``config`` turns it on (MAILPOOL_STATE); else None."""
        if config is None or not config.enabled:
            return None
        return cls(config, health, StateMetrics(registry))

    async def __aenter__(self) -> "State":
        """Open the table; Misconfigured (the process does not start) when it is missing."""
        await self.table.__aenter__()
        try:
            await self.table.check()
        except BaseException:
            await self.table.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.table.__aexit__(exc_type, exc, tb)

    @property
    def retrying(self) -> bool:
        """Whether a write that failed is still being retried."""
        return self.table.retrying

    async def record(self, events: Sequence[Event]) -> None:
        """Write the status records of ``events`` and the suppressions they cause (hard
        bounces, complaints, unsubscribes), in batches; returns once all are stored."""
        items = status.records(events, self.config.status_s)
        added = [entry for event in events for entry in caused_by(event)]
        items += [suppression.item(scope) for scope, suppression in added]
        if items:
            await self.table.write(items)
        for scope, suppression in added:
            self.suppressions.remember(scope, suppression)

    async def status(self, email_id: str) -> tuple[str | None, list[dict[str, Any]]]:
        """(the scope that sent it, its unexpired status records) of an email."""
        items, _ = await self.table.query(status.partition(email_id))
        live = [item for item in items if not status.expired(item)]
        scope = next((str(item["scope"]) for item in live if item.get("scope")), None)
        return scope, live
