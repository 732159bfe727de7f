"""PoolConfig: which queues make the pool and how the pool talks to them."""

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.settings import env_float, env_int, env_str
from pool import streams
from pool.streams import DEFAULT, Stream

#: SQS's per-message limit (1 MiB since 2025-08); queues and DLQs are provisioned and
#: converged to it unless told otherwise (MAILPOOL_MAX_MESSAGE_BYTES).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolConfig:
    """The queue pool: names, size, limits and timing of its calls to SQS."""

    prefix: str = "mailpool"
    shards: int = 4
    #: None leaves it to botocore (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_SQS, config files).
    endpoint_url: str | None = None
    #: None leaves it to botocore's chain (AWS_DEFAULT_REGION, config files).
    region: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    visibility_timeout_s: int = 30
    max_receive_count: int = 10
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600
    #: How long a batch waits for company before it is sent.
    send_linger_s: float = 0.002
    #: How long deletes and visibility changes wait for company before their batch call.
    settle_linger_s: float = 0.025
    #: How long a send (with its retries) may take before the caller gets ``Unavailable``.
    send_deadline_s: float = 5.0
    #: How long past its deadline a call already under way is waited for, so that the
    #: caller is told what happened rather than a guess (answers come within both).
    answer_margin_s: float = 1.0
    #: How long a delete or visibility change (with its retries) may take.
    settle_deadline_s: float = 10.0
    #: Sends waiting or in flight per shard at most; past it intake answers 503 at once.
    max_pending_per_shard: int = 5000
    #: Batch calls in flight at once per shard and action.
    calls_per_shard: int = 4
    connect_timeout_s: float = 2.0
    #: Must exceed the longest long poll (20 s).
    read_timeout_s: float = 30.0
    max_connections: int = 100
    #: The events queue (``<prefix>-events``, standard, with its DLQ) is part of the pool.
    events: bool = True
    #: Receives of one events-queue message before SQS dead-letters it (a safety net: the
    #: webhooks dispatcher dead-letters by its own schedule).
    events_max_receive_count: int = 100
    #: SES feedback arrives on ``<prefix>-ses-events`` (standard, with its DLQ).
    ses_feedback: bool = False
    #: ``fifo`` (order per group, deduplication) or ``standard``: the Lambda worker's
    #: variant (``<prefix>-<k>`` queues; no order, copies possible, claimed in the state
    #: table before each send).
    queue_type: str = "fifo"
    #: The streams the shards are split into (``pool.streams``); empty: one stream,
    #: ``transactional``, of every shard.
    streams: tuple[Stream, ...] = ()

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("shards must be at least 1")
        if not 1024 <= self.max_message_bytes <= 1_048_576:
            raise ValueError("max_message_bytes must be within 1024..1048576")
        if not 0 <= self.visibility_timeout_s <= 43_200:
            raise ValueError("visibility_timeout_s must be within 0..43200")
        if not 1 <= self.max_receive_count <= 1000:
            raise ValueError("max_receive_count must be within 1..1000")
        if self.queue_type not in ("fifo", "standard"):
            raise ValueError("queue_type must be fifo or standard")
        if self.streams and sum(s.shards for s in self.streams) != self.shards:
            raise ValueError("shards must be the sum of the streams' shards")

    @property
    def without_ses_feedback(self) -> "PoolConfig":
        """This pool as any process but webhooks sees it: SES feedback is the webhooks
        process's, so intake, senders and the Lambda worker neither open nor may touch it."""
        return dataclasses.replace(self, ses_feedback=False)

    @property
    def all_streams(self) -> tuple[Stream, ...]:
        """The streams, in order (their shards numbered one after another)."""
        return self.streams or (Stream(DEFAULT, self.shards),)

    def stream_at(self, shard: int) -> tuple[Stream, int]:
        """The stream shard ``shard`` belongs to, and its index within that stream."""
        for stream in self.all_streams:
            if shard < stream.shards:
                return stream, shard
            shard -= stream.shards
        raise IndexError("no such shard")

    def span(self, stream: str) -> tuple[int, int]:
        """(first shard, shards) of ``stream``; KeyError when there is no such stream."""
        first = 0
        for lane in self.all_streams:
            if lane.name == stream:
                return first, lane.shards
            first += lane.shards
        raise KeyError(stream)

    def _base(self, shard: int) -> str:
        stream, local = self.stream_at(shard)
        if stream.name == self.all_streams[0].name:  # the first keeps the pool's historical names
            return f"{self.prefix}-{local}"
        return f"{self.prefix}-{stream.name}-{local}"

    @property
    def fifo(self) -> bool:
        """Whether the shards are FIFO queues."""
        return self.queue_type == "fifo"

    @property
    def max_inline_bytes(self) -> int:
        """The largest body a queue carries itself. It leaves a 64th of the queue's limit for
        the attributes a move to the DLQ adds, so that every message can be moved."""
        return self.max_message_bytes - self.max_message_bytes // 64

    def queue_name(self, shard: int) -> str:
        """Name of shard ``shard``'s queue (FIFO: ``<prefix>-<k>.fifo``)."""
        return f"{self._base(shard)}.fifo" if self.fifo else self._base(shard)

    def dlq_name(self, shard: int) -> str:
        """Name of shard ``shard``'s dead-letter queue."""
        return f"{self._base(shard)}-dlq.fifo" if self.fifo else f"{self._base(shard)}-dlq"

    def events_name(self) -> str:
        """Name of the events queue (standard)."""
        return f"{self.prefix}-events"

    def ses_events_name(self) -> str:
        """Name of the queue SES's event notifications arrive on (through SNS)."""
        return f"{self.prefix}-ses-events"

    def ses_events_dlq_name(self) -> str:
        """Name of its dead-letter queue."""
        return f"{self.prefix}-ses-events-dlq"

    def events_dlq_name(self) -> str:
        """Name of the events queue's dead-letter queue (standard)."""
        return f"{self.prefix}-events-dlq"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "PoolConfig":
        """Read MAILPOOL_* and the region the way the AWS CLI does."""
        d = cls()
        spec = env_str(environ, "MAILPOOL_STREAMS", "")
        configured = streams.parse(spec) if spec else ()
        shards = env_int(environ, "MAILPOOL_SHARDS", d.shards)
        return cls(
            prefix=env_str(environ, "MAILPOOL_QUEUE_PREFIX", d.prefix),
            shards=sum(s.shards for s in configured) if configured else shards,
            streams=configured,
            endpoint_url=None,
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            max_message_bytes=env_int(environ, "MAILPOOL_MAX_MESSAGE_BYTES", d.max_message_bytes),
            visibility_timeout_s=env_int(
                environ, "MAILPOOL_VISIBILITY_TIMEOUT", d.visibility_timeout_s
            ),
            max_receive_count=env_int(environ, "MAILPOOL_MAX_RECEIVE_COUNT", d.max_receive_count),
            send_linger_s=env_float(environ, "MAILPOOL_SEND_LINGER_MS", d.send_linger_s * 1e3)
            / 1e3,
            send_deadline_s=env_float(environ, "MAILPOOL_SEND_DEADLINE", d.send_deadline_s),
            events=env_str(environ, "MAILPOOL_EVENTS", "on") != "off",
            ses_feedback=env_str(environ, "MAILPOOL_SES_FEEDBACK", "off") == "on",
            queue_type=env_str(environ, "MAILPOOL_QUEUE_TYPE", d.queue_type),
        )
