"""The pool's payload-agnostic message types: a body, a group, a deduplication ID."""

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to enqueue; ``dedup_id`` makes a resend inside SQS's 5-minute window a no-op.

    For a standard queue (the events queue) ``group`` and ``dedup_id`` are empty, and
    ``delay_s`` (up to 900) may hold it back.
    """

    body: str
    group: str = ""
    dedup_id: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    delay_s: int = 0
    #: The stream whose shards it goes to (empty: the first, the default).
    stream: str = ""


@dataclass(frozen=True, slots=True)
class Sent:
    """Where SQS put an accepted message."""

    shard: int
    message_id: str


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where the body of a message too large for its queue lives in S3, and its size."""

    bucket: str
    key: str
    #: Bytes of the body (0 in pointers written before sizes were recorded).
    size: int = 0


@dataclass(frozen=True, slots=True)
class Received:
    """A message taken from a shard; ``receipt`` is the handle for delete and visibility."""

    shard: int
    message_id: str
    receipt: str
    body: str
    group: str
    receive_count: int
    sent_at: float
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Set when ``body`` is only a pointer to the real body in S3 (``QueuePool.body``
    #: fetches it; ``QueuePool.delete`` deletes it with the message).
    blob: Pointer | None = None
