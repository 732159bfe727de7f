"""Settling a decided message, in one place: its outcome's events first, then the one SQS
call that records the outcome — delete it (delivered, bounced, suppressed), move it to the
DLQ, or hide it for its backoff.

Both faces of the delivery code settle through here: the long-running sender
(``sender/worker.py``) and the Lambda batch (``serverless/batch.py``). Each keeps only its
policy for a settlement that fails: the sender holds the message and retries it, the Lambda
batch names it in its partial batch answer. A settlement is resumable: run again after a
failure, it publishes nothing twice and goes on with what is left.
"""

import logging
from collections.abc import Awaitable, Callable

from aws.errors import AwsError
from core.events import Event
from pool.messages import Received
from pool.pool import QueuePool
from sender.delivery import Outcome, Settle
from state.publisher import Publisher

log = logging.getLogger(__name__)

Action = Callable[[], Awaitable[None]]


class Settlement:
    """One decided message on its way to being recorded: events, then its SQS call."""

    def __init__(
        self, message: Received, outcome: Outcome, publisher: Publisher, action: Action | None
    ) -> None:
        self.message = message
        self.outcome = outcome
        self._publisher = publisher
        self._events: tuple[Event, ...] = outcome.events
        self._action = action

    @property
    def email_id(self) -> str:
        return self.outcome.email_id

    @property
    def label(self) -> str:
        """The outcome, as the metrics count it (``delete``, ``retry``, ``dead_letter``)."""
        return self.outcome.settle.value

    async def publish(self) -> None:
        """Publish the outcome's events, once (AwsError when they did not land)."""
        if self._events:
            await self._publisher.publish(self._events)
            self._events = ()

    async def run(self) -> None:
        """Publish what is left of the events, then make the SQS call; AwsError when either
        failed (what landed is not done again)."""
        await self.publish()
        if self._action is not None:
            await self._action()
            self._action = None


class Settler:
    """Makes each decided outcome's settlement on ``pool``.

    ``source_deletes``: an event source (a Lambda event source mapping) deletes what the
    worker reports done, so a delivered message is not deleted here (except one with a body
    in S3: deleted with its body, best effort) and a dead-lettered one is copied to the DLQ
    without a delete.
    """

    def __init__(self, pool: QueuePool, publisher: Publisher, *, source_deletes: bool) -> None:
        self._pool = pool
        self._publisher = publisher
        self._source_deletes = source_deletes

    def settlement(self, message: Received, outcome: Outcome) -> Settlement:
        """``outcome``'s settlement of ``message``."""
        return Settlement(message, outcome, self._publisher, self._action(message, outcome))

    def _action(self, message: Received, outcome: Outcome) -> Action | None:
        pool = self._pool
        if outcome.settle is Settle.RETRY:
            return lambda: pool.set_visibility(message, outcome.delay_s)
        if outcome.settle is Settle.DEAD_LETTER:
            delete = not self._source_deletes
            return lambda: pool.dead_letter(message, outcome.reason, delete=delete)
        if not self._source_deletes:
            return lambda: pool.delete(message)
        if message.blob is not None:
            return lambda: self._drop_body(message, outcome.email_id)
        return None

    async def _drop_body(self, message: Received, email_id: str) -> None:
        """A settled message's body in S3 goes with it, as in the long-running sender: the
        message is deleted first (the event source's own delete then finds it gone), so a
        copy that comes back never finds its body missing. A failure is logged: the event
        source still deletes the message and the bucket's lifecycle rule expires the body."""
        try:
            await self._pool.delete(message)
        except AwsError as exc:
            extra = {"id": email_id, "error": type(exc).__name__}
            log.warning("could not delete a settled message with its body", extra=extra)
