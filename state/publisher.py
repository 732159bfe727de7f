"""Publishing events: the state store first, then the events queue — the one way every
process records what became of an email (the sender's outcomes, intake's unsubscribes,
webhooks' SES feedback)."""

from collections.abc import Callable, Sequence

from core.events import Event
from core.sealing import Keyring
from pool.messages import Outgoing
from pool.pool import QueuePool
from state.store import State


class Publisher:
    """Records events in the state store (status, suppressions), then puts them on the
    events queue (``counted`` is told each event's type once it is there). A message is
    settled only after its outcome's events are published."""

    def __init__(
        self,
        pool: QueuePool,
        keyring: Keyring | None = None,
        state: State | None = None,
        counted: Callable[[str], None] | None = None,
    ) -> None:
        self._pool = pool
        self._counted = counted
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
            if self._counted is not None:
                for event in events:
                    self._counted(event.type)
