"""Accepting emails: validate, wrap in an envelope, and return once SQS has it."""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from intake.auth import ANONYMOUS
from intake.errors import ApiError
from intake.ids import idempotent_id, new_id
from mailpool.envelope import (
    Envelope,
    Pointer,
    ValidationError,
    encode_pointer,
    message_group,
    parse_email,
    parse_group,
)
from mailpool.ordering import chains, until_failure
from mailpool.sealing import Keyring
from metrics.intake import IntakeMetrics
from pool.blobs import BlobStore
from pool.errors import NoAnswer, Overloaded, PoolError, Rejected, Unavailable
from pool.messages import Outgoing
from pool.pool import QueuePool

log = logging.getLogger(__name__)

#: Idempotency scope while intake has no API keys: every producer shares it.
DEFAULT_SCOPE = ANONYMOUS


@dataclass(frozen=True, slots=True)
class Prepared:
    """A valid email ready to send: its envelope body and routing."""

    id: str
    group: str
    body: bytes
    #: Past the queue's size limit: the body goes to S3 and the queue gets a pointer.
    large: bool = False


class Acceptor:
    """Turns producers' JSON into acknowledged SQS messages (or ApiErrors naming why not)."""

    def __init__(
        self,
        pool: QueuePool,
        metrics: IntakeMetrics,
        *,
        retry_after_s: int,
        keyring: Keyring | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self._pool = pool
        self._blobs = blobs
        self._metrics = metrics
        self._retry_after_s = retry_after_s
        self._keyring = keyring
        self._limit = pool.config.max_message_bytes

    def prepare(self, doc: Any, key: str | None, scope: str = DEFAULT_SCOPE) -> Prepared:
        """Validate ``doc`` and build its envelope; raises ApiError 422/413."""
        try:
            email = parse_email(doc)
            group = parse_group(doc.get("group"))
        except ValidationError as exc:
            self._metrics.refused(exc.code)
            raise ApiError(422, exc.code, exc.message, exc.field) from None
        message_id = new_id() if key is None else idempotent_id(scope, key)
        envelope = Envelope(
            id=message_id,
            group=group or message_id,
            accepted_at=time.time(),
            email=email,
            scope=scope,
        )
        body = envelope.encode(self._keyring)
        group_id = message_group(group, message_id)
        if len(body) > self._limit and self._blobs is not None:
            return Prepared(id=message_id, group=group_id, body=body, large=True)
        if len(body) > self._limit:
            self._metrics.refused("message_too_large")
            raise ApiError(
                413,
                "message_too_large",
                f"the email is {len(body)} bytes as queued; the queue takes at most {self._limit}",
            )
        return Prepared(id=message_id, group=group_id, body=body)

    async def _offload(self, prepared: Prepared) -> bytes:
        """Put a large envelope in S3; the pointer that stands for it in the queue."""
        assert self._blobs is not None
        pointer = Pointer(self._blobs.bucket, self._blobs.key_for(prepared.id))
        try:
            await self._blobs.put(pointer.key, prepared.body)
        except PoolError as exc:  # the store is the service's side: never the producer's fault
            raise Unavailable(f"storing the large body failed: {exc}", code=exc.code) from exc
        return encode_pointer(prepared.id, pointer)

    async def send(self, prepared: Prepared, deadline_s: float | None = None) -> str:
        """Enqueue; returns the id once SQS acknowledged it, else ApiError 503/422.

        A 503 means the email is not stored, except ``in_doubt``: SQS was asked but did not
        answer within the deadline and its margin, so it may be; a retry with the same
        Idempotency-Key is deduplicated either way.
        """
        started = time.perf_counter()
        try:
            body = await self._offload(prepared) if prepared.large else prepared.body
            message = Outgoing(body=body.decode(), group=prepared.group, dedup_id=prepared.id)
            sent = await self._pool.send(message, len(body), deadline_s)
        except Overloaded:  # refused before any work; not logged (it comes in floods)
            self._metrics.refused("overloaded")
            raise ApiError(
                503,
                "overloaded",
                "mailpool is at capacity and did not take the email; retry after Retry-After",
                retry_after=self._retry_after_s,
            ) from None
        except NoAnswer as exc:
            self._metrics.refused("in_doubt")
            log.warning(
                "queue did not answer", extra={"id": prepared.id, "error": type(exc).__name__}
            )
            raise ApiError(
                503,
                "in_doubt",
                "SQS did not answer in time, so the email may or may not be stored; retry with "
                "the same Idempotency-Key (deduplicated within 5 minutes)",
                retry_after=self._retry_after_s,
            ) from None
        except Rejected as exc:
            self._metrics.refused("rejected_by_queue")
            log.warning("queue rejected message", extra={"id": prepared.id, "code": exc.code})
            raise ApiError(422, "rejected_by_queue", "the queue refused the email") from None
        except PoolError as exc:
            self._metrics.refused("unavailable")
            log.warning(
                "queue unavailable",
                extra={"id": prepared.id, "error": type(exc).__name__, "code": exc.code},
            )
            raise ApiError(
                503,
                "unavailable",
                "the queue did not acknowledge the email; retry with the same Idempotency-Key",
                retry_after=self._retry_after_s,
            ) from None
        self._metrics.accepted(time.perf_counter() - started)
        log.debug("accepted", extra={"id": prepared.id, "shard": sent.shard})
        return prepared.id

    async def accept(self, doc: Any, key: str | None, scope: str = DEFAULT_SCOPE) -> str:
        """Validate and enqueue one email."""
        return await self.send(self.prepare(doc, key, scope))

    async def accept_many(
        self, docs: Sequence[Any], key: str | None, scope: str = DEFAULT_SCOPE
    ) -> list[str | ApiError]:
        """Validate and enqueue each email on its own; results in request order.

        Emails of one group are sent one after another in request order (each only once
        SQS has the one before), so a batch never reorders a group; groups run in parallel.
        The request has one deadline: an email still unsent when it passes is not sent.
        """
        until = time.monotonic() + self._pool.config.send_deadline_s
        results: list[str | ApiError] = [ApiError(500, "internal", "not processed")] * len(docs)
        valid: list[tuple[int, Prepared]] = []
        for index, doc in enumerate(docs):
            try:
                item_key = None if key is None else f"{key}:{index}"
                valid.append((index, self.prepare(doc, item_key, scope)))
            except ApiError as exc:
                exc.field = f"[{index}]" + ("" if exc.field is None else f".{exc.field}")
                results[index] = exc

        async def run_chain(chain: list[tuple[int, Prepared]]) -> None:
            failure: ApiError | None = None

            async def step(entry: tuple[int, Prepared]) -> bool:
                nonlocal failure
                index, prepared = entry
                try:
                    results[index] = await self.send(prepared, until - time.monotonic())
                except ApiError as exc:
                    results[index] = failure = exc
                    return False
                return True

            # Later emails of a group whose email failed stay unsent, so its order holds.
            for later, _ in await until_failure(chain, step):
                assert failure is not None
                results[later] = ApiError(
                    failure.status,
                    failure.code,
                    "not sent: an earlier email of its group failed",
                    retry_after=failure.retry_after,
                )

        async with asyncio.TaskGroup() as tasks:
            for chain in chains(valid, lambda entry: entry[1].group).values():
                tasks.create_task(run_chain(chain))
        return results
