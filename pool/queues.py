"""One queue of the pool as a process holds it: its URLs and the batching coalescers of the
calls the process's role makes on it, and the roles themselves."""

import enum
from dataclasses import dataclass
from typing import Any, TypeVar

from aws.coalesce import CallObserver, Coalescer
from pool.messages import Outgoing


class Role(enum.Flag):
    """What a process does with the pool: it opens the batching flushers its role uses and
    no others. Every role publishes events (the events queue's sends)."""

    #: Sends to the shards (intake).
    PRODUCER = enum.auto()
    #: Receives from the shards and settles what it received: deletes, visibility changes,
    #: moves to the DLQ (the sender, the Lambda worker).
    CONSUMER = enum.auto()
    #: Receives from the events and SES feedback queues and settles those (webhooks).
    EVENTS = enum.auto()
    #: Everything (tools, benchmarks, tests).
    ALL = PRODUCER | CONSUMER | EVENTS


_C = TypeVar("_C", bound="Coalescer[Any, Any]")


class NotInRole(RuntimeError):
    """A call this pool's role does not make (its flusher was never opened): a bug in the
    process's assembly, never retried."""


@dataclass(slots=True)
class Queue:
    index: int
    url: str
    dlq_url: str
    received: CallObserver
    #: Each action's coalescer, or None where the pool's role does not make that call.
    sends: Coalescer[Outgoing, str] | None = None
    dead_letters: Coalescer[Outgoing, str] | None = None
    deletes: Coalescer[str, None] | None = None
    visibilities: Coalescer[tuple[str, int], None] | None = None

    def coalescers(self) -> tuple[Coalescer[Any, Any], ...]:
        """The flushers this shard runs."""
        every = (self.sends, self.dead_letters, self.deletes, self.visibilities)
        return tuple(c for c in every if c is not None)

    @property
    def send(self) -> Coalescer[Outgoing, str]:
        return _opened(self.sends, "SendMessageBatch", self.index)

    @property
    def dead_letter(self) -> Coalescer[Outgoing, str]:
        return _opened(self.dead_letters, "SendMessageBatch.dlq", self.index)

    @property
    def delete(self) -> Coalescer[str, None]:
        return _opened(self.deletes, "DeleteMessageBatch", self.index)

    @property
    def visibility(self) -> Coalescer[tuple[str, int], None]:
        return _opened(self.visibilities, "ChangeMessageVisibilityBatch", self.index)


def _opened(coalescer: "_C | None", action: str, index: int) -> "_C":
    if coalescer is None:
        raise NotInRole(f"{action} on shard {index}: not this process's role")
    return coalescer
