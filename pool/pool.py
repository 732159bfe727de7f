"""QueuePool: N FIFO queues behind one SQS client, routed by group, batched per shard."""

import asyncio
import contextlib
import dataclasses
import logging
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws.coalesce import Coalescer, CoalescerLimits
from aws.errors import AwsError, Misconfigured, NoAnswer, PoolClosed, TooLarge, Unavailable
from core.health import Health
from pool.blobs import BlobStore, encode_pointer, pointer_of
from pool.config import PoolConfig
from pool.messages import Outgoing, Pointer, Received, Sent
from pool.observer import PoolObserver
from pool.queues import Queue, Role
from pool.routing import shard_for
from pool.sqs import SqsClient

log = logging.getLogger(__name__)

#: The shard number of messages received from the events queue.
EVENTS = -1
#: The shard number of messages received from the SES feedback queue.
SES_FEEDBACK = -2
#: Message attribute that carries the reason a message was dead-lettered.
REASON_ATTRIBUTE = "mailpool-reason"
#: Message attribute naming the shard a dead-lettered message came from.
SOURCE_ATTRIBUTE = "mailpool-source-shard"


@dataclass(frozen=True, slots=True)
class ShardDepth:
    """Approximate message counts of one shard and its dead-letter queue."""

    shard: int
    visible: int
    in_flight: int
    delayed: int
    dead_lettered: int


class QueuePool:
    """Routes messages to shards by group and batches every call per shard and action.

    Its flushers run in one background task watched by ``health``: if it dies, the
    process turns unready and exits (see ``core.health``).

    With ``blobs``, a body past ``max_inline_bytes`` goes to S3 and the queue carries a
    pointer to it (see ``pool.blobs``); without, such a body is ``TooLarge``.
    """

    def __init__(
        self,
        config: PoolConfig,
        metrics: PoolObserver,
        health: Health | None = None,
        blobs: BlobStore | None = None,
        role: Role = Role.ALL,
    ) -> None:
        self.config = config
        self.role = role
        self.blobs = blobs
        self.health = health or Health()
        self._closing = False
        self._metrics = metrics
        self._client = SqsClient.from_config(config)
        self._shards: list[Queue] = []
        #: The events queue, handled like one more shard (``EVENTS``), when configured.
        self._events: Queue | None = None
        #: The SES feedback queue (``SES_FEEDBACK``), when configured.
        self._feedback: Queue | None = None
        self._flushers: asyncio.Task[None] | None = None
        self._stack = contextlib.AsyncExitStack()
        # The streams, read once: routing and every email's stream ask for them.
        streams = config.all_streams
        #: The stream names, in order; the first is the default (an email naming none, an
        #: envelope written before streams).
        self.streams = tuple(stream.name for stream in streams)
        self.default_stream = self.streams[0]
        self._spans = {name: config.span(name) for name in self.streams}

    @property
    def shards(self) -> int:
        """How many shards (FIFO queues) the pool has."""
        return self.config.shards

    def shard_of(self, group: str, stream: str = "") -> int:
        """The shard that owns ``group`` in ``stream`` (empty: the first stream);
        KeyError when the pool has no such stream."""
        first, shards = self._spans[stream or self.default_stream]
        return first + shard_for(group, shards)

    @property
    def max_inline_bytes(self) -> int:
        """The largest body the queue carries itself (``PoolConfig.max_inline_bytes``)."""
        return self.config.max_inline_bytes

    async def __aenter__(self) -> "QueuePool":
        await self._stack.enter_async_context(self._client)
        if self.blobs is not None:
            await self._stack.enter_async_context(self.blobs)
        cfg = self.config
        try:
            urls = await asyncio.gather(
                *(self._resolve(cfg.queue_name(k), cfg.dlq_name(k)) for k in range(cfg.shards))
            )
            if cfg.events:
                url, dlq = await self._resolve(cfg.events_name(), cfg.events_dlq_name())
                self._events = self._make_shard(EVENTS, url, dlq)
            if cfg.ses_feedback:
                url, dlq = await self._resolve(cfg.ses_events_name(), cfg.ses_events_dlq_name())
                self._feedback = self._make_shard(SES_FEEDBACK, url, dlq)
        except BaseException:
            await self._stack.aclose()
            raise
        self._shards = [self._make_shard(k, url, dlq) for k, (url, dlq) in enumerate(urls)]
        self._flushers = asyncio.create_task(self._run_flushers(), name="pool-flushers")
        self.health.watch(self._flushers, "pool-flushers", may_end=lambda: self._closing)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Settle every pending send, delete and visibility change, then close the client."""
        self._closing = True
        for shard in self._queues():
            for coalescer in shard.coalescers():
                coalescer.close()
        if self._flushers is not None:
            try:
                # A flusher that died was logged, with its traceback, by ``health``.
                await asyncio.gather(self._flushers, return_exceptions=True)
            finally:
                self._flushers = None
        await self._stack.aclose()

    async def _resolve(self, name: str, dlq_name: str) -> tuple[str, str]:
        url, dlq = await asyncio.gather(
            self._client.queue_url(name), self._client.queue_url(dlq_name)
        )
        return url, dlq

    def _queues(self) -> list[Queue]:
        """The shards, and the events queue when there is one."""
        extra = [lane for lane in (self._events, self._feedback) if lane is not None]
        return [*self._shards, *extra]

    def _make_shard(self, index: int, url: str, dlq_url: str) -> Queue:
        cfg = self.config
        move_limits = CoalescerLimits(
            max_bytes=cfg.max_message_bytes,
            linger_s=cfg.send_linger_s,
            max_calls=cfg.calls_per_shard,
            deadline_s=cfg.send_deadline_s,
            answer_margin_s=cfg.answer_margin_s,
        )
        # Producers' sends shed load they could not finish in time (503 at once, not late).
        send_limits = dataclasses.replace(
            move_limits, shed=True, max_backlog=cfg.max_pending_per_shard
        )
        # Deletes and visibility changes are not on a caller's critical path: let them
        # linger longer to fill batches (one call per ten messages, not per two), and keep
        # retrying for longer.
        settle = CoalescerLimits(
            linger_s=max(cfg.send_linger_s, cfg.settle_linger_s),
            max_calls=cfg.calls_per_shard,
            deadline_s=cfg.settle_deadline_s,
            answer_margin_s=cfg.answer_margin_s,
        )
        observe = self._metrics.observer
        client = self._client
        label: int | str = {EVENTS: "events", SES_FEEDBACK: "ses-events"}.get(index, index)
        if index < 0:
            # Publishing events is not on a producer's critical path: like deletes, it
            # lingers to fill its batches (one call per ten events) and retries longer.
            send_limits = dataclasses.replace(
                move_limits, linger_s=settle.linger_s, deadline_s=cfg.settle_deadline_s
            )
        # Which calls this process makes on this lane: a shard is sent to by producers and
        # settled by consumers; the events queues are published to by every process and
        # settled by the one that reads them.
        settles = Role.EVENTS if index < 0 else Role.CONSUMER
        sends = index < 0 or Role.PRODUCER in self.role
        settling = settles in self.role
        return Queue(
            index=index,
            url=url,
            dlq_url=dlq_url,
            received=observe("ReceiveMessage", label),
            sends=Coalescer(
                lambda batch: client.send_batch(url, batch),
                send_limits,
                observe("SendMessageBatch", label),
                action="SendMessageBatch",
            )
            if sends
            else None,
            dead_letters=Coalescer(
                lambda batch: client.send_batch(dlq_url, batch),
                move_limits,
                observe("SendMessageBatch.dlq", label),
                action="SendMessageBatch.dlq",
            )
            if settling
            else None,
            deletes=Coalescer(
                lambda receipts: client.delete_batch(url, receipts),
                settle,
                observe("DeleteMessageBatch", label),
                action="DeleteMessageBatch",
            )
            if settling
            else None,
            visibilities=Coalescer(
                lambda changes: client.change_visibility_batch(url, changes),
                settle,
                observe("ChangeMessageVisibilityBatch", label),
                action="ChangeMessageVisibilityBatch",
            )
            if settling
            else None,
        )

    def flushing(self) -> set[tuple[int, str]]:
        """The (shard, action) pairs whose batching flushers this pool runs (the events
        queue is shard ``EVENTS``, the SES feedback queue ``SES_FEEDBACK``)."""
        return {(lane.index, c.action) for lane in self._queues() for c in lane.coalescers()}

    async def _run_flushers(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for shard in self._queues():
                for coalescer in shard.coalescers():
                    tasks.create_task(coalescer.run())

    def _shard(self, index: int) -> Queue:
        if index == SES_FEEDBACK:
            if self._feedback is None:
                raise PoolClosed("the pool has no SES feedback queue (MAILPOOL_SES_FEEDBACK)")
            return self._feedback
        if index == EVENTS:
            if self._events is None:
                raise PoolClosed("the pool has no events queue (MAILPOOL_EVENTS=off)")
            return self._events
        if not self._shards:
            raise PoolClosed("the pool is not open")
        return self._shards[index]

    @property
    def events(self) -> bool:
        """Whether the pool has the events queue."""
        return self._events is not None

    @property
    def ses_feedback(self) -> bool:
        """Whether the pool has the SES feedback queue."""
        return self._feedback is not None

    async def publish(self, messages: Sequence[Outgoing], *, dead: bool = False) -> None:
        """Put ``messages`` on the events queue (on its DLQ when ``dead``), batched; returns
        once SQS has them all."""
        lane = self._shard(EVENTS)
        target = lane.dead_letter if dead else lane.send
        if len(messages) == 1:  # the common case: no task per message
            await target.submit(messages[0], len(messages[0].body.encode()))
            return
        await asyncio.gather(*(target.submit(m, len(m.body.encode())) for m in messages))

    async def send(
        self, message: Outgoing, size: int | None = None, deadline_s: float | None = None
    ) -> Sent:
        """Enqueue ``message`` on its group's shard; returns once SQS acknowledged it.

        Raises ``Overloaded`` at once when the shard's backlog would outlast the deadline
        (``send_deadline_s``, or ``deadline_s`` when given), and ``NoAnswer`` when SQS was
        asked but never answered (the message may be stored: repeat with the same dedup ID).
        A body past ``max_inline_bytes`` goes to S3 first (``TooLarge`` without a bucket).
        """
        index = self.shard_of(message.group, message.stream)
        if size is None:
            size = len(message.body.encode())
        if size > self.max_inline_bytes:
            started = time.monotonic()
            message = await self._offload(message, size)
            size = len(message.body)
            if deadline_s is not None:
                deadline_s -= time.monotonic() - started
        message_id = await self._shard(index).send.submit(message, size, deadline_s)
        self._metrics.enqueued(index)
        return Sent(shard=index, message_id=message_id)

    def admit(self, size: int) -> None:
        """``TooLarge`` when a body of ``size`` bytes cannot be queued: past
        ``max_inline_bytes`` with no S3 bucket to carry it. The one size check: ``send``
        makes it, and intake asks it before any work is done for such an email."""
        if size > self.max_inline_bytes and self.blobs is None:
            raise TooLarge(
                f"the message is {size} bytes; the queue takes at most {self.max_inline_bytes} "
                "and no S3 bucket (MAILPOOL_S3_BUCKET) is configured for larger ones"
            )

    async def _offload(self, message: Outgoing, size: int) -> Outgoing:
        """Put ``message``'s body in S3; the message with a pointer in its place."""
        self.admit(size)
        assert self.blobs is not None  # admitted past the inline limit: there is a bucket
        body = message.body.encode()
        pointer = Pointer(self.blobs.bucket, self.blobs.key_for(message.dedup_id, body), size)
        try:
            await self.blobs.put(pointer.key, body)
        except AwsError as exc:  # S3 is the service's side: never the producer's fault
            raise Unavailable(f"storing the large body failed: {exc}", code=exc.code) from exc
        self._metrics.offloaded()
        return dataclasses.replace(message, body=encode_pointer(message.dedup_id, pointer))

    async def body(self, message: Received) -> str | bytes:
        """``message``'s body, fetched from S3 when the queue holds a pointer to it.

        Raises ``BlobMissing`` when the object is gone, ``Unavailable`` when S3 fails, and
        ``Misconfigured`` when this pool has no bucket to read it from.
        """
        if message.blob is None:
            return message.body
        if self.blobs is None:
            raise Misconfigured("a message's body is in S3 and no MAILPOOL_S3_BUCKET is set")
        return await self.blobs.get(message.blob.bucket, message.blob.key)

    async def receive(
        self, shard: int, *, max_messages: int, wait_s: int, visibility_s: int | None = None
    ) -> list[Received]:
        """Long-poll ``shard`` for up to ``max_messages`` messages."""
        target = self._shard(shard)
        started = time.monotonic()
        observe = target.received
        try:
            messages = await self._client.receive(
                target.url,
                shard,
                max_messages=max_messages,
                wait_s=wait_s,
                visibility_s=(
                    self.config.visibility_timeout_s if visibility_s is None else visibility_s
                ),
            )
        except AwsError as exc:
            observe(0, time.monotonic() - started, exc, ())
            raise
        except Exception as exc:  # an answer that cannot be read fails this receive only
            log.warning(
                "receive answered unexpectedly",
                extra={"action": "ReceiveMessage", "shard": shard, "error": type(exc).__name__},
            )
            error = NoAnswer(f"ReceiveMessage: unexpected {type(exc).__name__}")
            observe(0, time.monotonic() - started, error, ())
            raise error from exc
        observe(len(messages), time.monotonic() - started, None, ())
        return [self._resolve_pointer(m) for m in messages]

    @staticmethod
    def _resolve_pointer(message: Received) -> Received:
        pointer = pointer_of(message.body)
        return message if pointer is None else dataclasses.replace(message, blob=pointer)

    async def delete(self, message: Received) -> None:
        """Delete a received message (batched with other deletes of its shard), then its
        body in S3 if it has one (a failure there is logged: the lifecycle rule expires it)."""
        await self._shard(message.shard).delete.submit(message.receipt)
        if message.blob is None or self.blobs is None:
            return
        try:
            await self.blobs.delete(message.blob.bucket, message.blob.key)
        except AwsError as exc:
            extra = {"sqs_id": message.message_id, "error": type(exc).__name__}
            log.warning("could not delete a body from S3", extra=extra)

    def settles_failing(self, shard: int) -> bool:
        """Whether a call that records outcomes has failed and is still being retried: a
        delete or DLQ move of ``shard``, or an event publish. Until each lands (or gives
        up), a message it would settle may come back."""
        lane = self._shard(shard)
        publishing = self._events is not None and self._events.send.retrying
        return any(c.retrying for c in (lane.deletes, lane.dead_letters) if c) or publishing

    async def set_visibility(self, message: Received, seconds: int) -> None:
        """Hide ``message`` for ``seconds`` from now (0 makes it visible at once)."""
        await self._shard(message.shard).visibility.submit((message.receipt, seconds))

    async def dead_letter(
        self,
        message: Received,
        reason: str,
        attributes: Mapping[str, str] | None = None,
        *,
        delete: bool = True,
    ) -> None:
        """Move ``message`` to its shard's DLQ at once with ``reason`` (and ``attributes``),
        then delete it (unless ``delete`` is False: a Lambda event source deletes it)."""
        target = self._shard(message.shard)
        marks = {
            **message.attributes,
            **(attributes or {}),
            REASON_ATTRIBUTE: reason,
            SOURCE_ATTRIBUTE: str(message.shard),
        }
        if message.shard < 0:  # a standard queue: no group, no deduplication
            copy = Outgoing(body=message.body, attributes=marks)
        else:
            copy = Outgoing(
                body=message.body,
                group=message.group or message.message_id,
                # The SQS message ID keeps a retried move from landing twice.
                dedup_id=message.message_id,
                attributes=marks,
            )
        # SQS counts the attributes in the message's size (and the batch's).
        size = len(message.body.encode()) + sum(len(k) + len(v) + 6 for k, v in marks.items())
        await target.dead_letter.submit(copy, size)
        if delete:
            await target.delete.submit(message.receipt)

    async def check(self, timeout_s: float = 2.0) -> None:
        """Raise ``Unavailable`` unless every queue of the pool answers within ``timeout_s``
        (``PoolClosed`` at once when a background task of the process has died)."""
        if not self.health.ok:
            raise PoolClosed(f"{self.health.failure} died")
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(
                    *(
                        self._client.attributes(url, ["QueueArn"])
                        for shard in self._queues()
                        for url in (shard.url, shard.dlq_url)
                    )
                )
        except TimeoutError:
            raise Unavailable("the queues did not answer in time") from None

    async def events_waiting(self) -> int:
        """Events visible or in flight on the events queue (0 without one)."""
        if self._events is None:
            return 0
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = await self._client.attributes(self._events.url, names)
        return sum(int(found.get(name, 0)) for name in names)

    async def depth(self) -> list[ShardDepth]:
        """Approximate visible, in-flight, delayed and dead-lettered counts per shard."""
        return list(await asyncio.gather(*(self._depth(s) for s in self._shards)))

    async def _depth(self, shard: Queue) -> ShardDepth:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        main, dlq = await asyncio.gather(
            self._client.attributes(shard.url, names),
            self._client.attributes(shard.dlq_url, names[:1]),
        )
        return ShardDepth(
            shard=shard.index,
            visible=int(main.get(names[0], 0)),
            in_flight=int(main.get(names[1], 0)),
            delayed=int(main.get(names[2], 0)),
            dead_lettered=int(dlq.get(names[0], 0)),
        )


def depth_total(depths: Sequence[ShardDepth]) -> int:
    """Messages waiting or in flight across the pool (DLQs excluded)."""
    return sum(d.visible + d.in_flight + d.delayed for d in depths)
