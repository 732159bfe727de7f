"""Publishing an outcome's events: the state store first, then the events queue."""

from collections.abc import Sequence

from core.events import Event
from core.sealing import Keyring
from metrics.sender import SenderMetrics
from pool.messages import Outgoing
from pool.pool import QueuePool
from state.store import State


class Publisher:
    """Records events in the state store (status, suppressions), then puts them on the
    events queue. Shared by the sender and the Lambda worker: a message is settled only
    after its outcome's events are published."""

    def __init__(
        self,
        pool: QueuePool,
        metrics: SenderMetrics,
        keyring: Keyring | None = None,
        state: State | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._keyring = keyring
        self._state = state

    async def publish(self, events: Sequence[Event]) -> None:
        """Returns once the state store and the events queue have all of ``events``;
        raises ``AwsError`` otherwise (publishing again repeats nothing: event ids are
        deterministic and state writes idempotent)."""
        if not events:
            return
        # The state first: by the time a webhook tells of an event, its status is readable.
        if self._state is not None:
            await self._state.record(events)
        if self._pool.events:
            await self._pool.publish([Outgoing(body=e.encode(self._keyring)) for e in events])
            for event in events:
                self._metrics.published(event.type)
