"""Accepting emails: validate, wrap in an envelope, and return once SQS has it."""

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws.errors import AwsError, NoAnswer, Overloaded, Rejected, TooLarge
from core.attachments import EmailLimits
from core.envelope import Email, Envelope, message_group
from core.ordering import chains, until_failure
from core.sealing import Keyring
from intake.auth import ANONYMOUS
from intake.errors import ApiError
from intake.ids import batch_entry_key, idempotent_id, new_id
from intake.quota import Quotas
from intake.validation import ValidationError, parse_submission
from metrics.intake import IntakeMetrics
from pool.messages import Outgoing
from pool.pool import QueuePool
from state.idempotency import Conflict, Decision, Idempotency, digest
from state.store import State
from state.tokens import Signer, Unsubscribe

log = logging.getLogger(__name__)

#: Idempotency scope while intake has no API keys: every producer shares it.
DEFAULT_SCOPE = ANONYMOUS


@dataclass(frozen=True, slots=True)
class Prepared:
    """A valid email ready to send: its envelope body and routing."""

    id: str
    group: str
    body: bytes
    #: The stream it goes to (its shards).
    stream: str = ""


class Acceptor:
    """Turns producers' JSON into acknowledged SQS messages (or ApiErrors naming why not)."""

    def __init__(
        self,
        pool: QueuePool,
        metrics: IntakeMetrics,
        *,
        retry_after_s: int,
        keyring: Keyring | None = None,
        state: State | None = None,
        signer: Signer | None = None,
        limits: EmailLimits | None = None,
        key_streams: Mapping[str, frozenset[str]] | None = None,
        stream_quotas: Mapping[str, Quotas] | None = None,
    ) -> None:
        self._pool = pool
        #: API keys (by name) limited to some streams.
        self._key_streams = dict(key_streams or {})
        #: Each key's quota on a stream (by stream), beside its quota over all of them.
        self._stream_quotas = dict(stream_quotas or {})
        self._state = state
        self._signer = signer
        self._idempotency: Idempotency | None = None
        #: Idempotency claims being marked accepted, after their 202.
        self._marks: set[asyncio.Future[None]] = set()
        if state is not None:
            # A claim left pending longer than a send can take (with its answer margin) was
            # abandoned by its request: another may take it over.
            config = pool.config
            takeover = config.send_deadline_s + config.answer_margin_s + 1.0
            self._idempotency = Idempotency(state.table, state.config.idempotency_s, takeover)
        self._metrics = metrics
        self._retry_after_s = retry_after_s
        self._keyring = keyring
        self._limits = limits or EmailLimits()

    def prepare(
        self, doc: Any, key: str | None, scope: str = DEFAULT_SCOPE, email_id: str | None = None
    ) -> Prepared:
        """Validate ``doc`` and build its envelope (with ``email_id``, or a new id);
        raises ApiError 422/413."""
        try:
            submission = parse_submission(doc, self._limits)
            stream = self._stream(doc.get("stream"), scope)
        except ValidationError as exc:
            self._metrics.refused(exc.code)
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        message_id = email_id or self._new_id(key, scope)
        email, group = submission.email, submission.group
        if email.unsubscribe is not None:
            email = self._with_unsubscribe(email, scope, message_id)
        envelope = Envelope(
            id=message_id,
            group=group or message_id,
            accepted_at=time.time(),
            email=email,
            scope=scope,
            stream=stream,
            mailing_list=email.unsubscribe,
        )
        body = envelope.encode(self._keyring)
        # Asked now, before an Idempotency-Key is claimed or a batch's group is held up by
        # an email that cannot be queued.
        try:
            self._pool.admit(len(body))
        except TooLarge:
            raise self._too_large(len(body)) from None
        return Prepared(
            id=message_id, group=message_group(group, message_id), body=body, stream=stream
        )

    def _stream(self, value: Any, scope: str) -> str:
        """The stream an email names (default: the pool's first); 422 for another, 403 for
        one its API key may not send on."""
        known = self._pool.streams
        stream = self._pool.default_stream if value is None else value
        if not isinstance(stream, str) or stream not in known:
            names = ", ".join(known)
            raise ValidationError("stream", f"must be one of: {names}", "unknown_stream")
        allowed = self._key_streams.get(scope)
        if allowed is not None and stream not in allowed:
            mine = ", ".join(sorted(allowed))
            message = f"this API key may send only on: {mine}"
            raise ValidationError("stream", message, "stream_not_allowed", status=403)
        return stream

    def _admit_stream(self, scope: str, stream: str, spent: dict[str, int] | None = None) -> None:
        """Take one of the key's emails on ``stream`` from its quota there; 429 naming the
        field when it is spent. ``spent`` (a batch's): streams already refused, with their
        Retry-After, so that no later email of the batch on them slips in out of order."""
        quotas = self._stream_quotas.get(stream)
        if quotas is None:
            return
        if spent is not None and stream in spent:
            retry_after = spent[stream]
        else:
            grant = quotas.take(scope, 1)
            if grant.admitted:
                return
            retry_after = grant.retry_after_s
            if spent is not None:
                spent[stream] = retry_after
        self._metrics.refused("rate_limited")
        raise ApiError(
            429,
            "rate_limited",
            f"this API key's quota of {stream} emails per second is spent; retry after Retry-After",
            "stream",
            retry_after=retry_after,
        )

    def _too_large(self, size: int) -> ApiError:
        self._metrics.refused("message_too_large")
        return ApiError(
            413,
            "message_too_large",
            f"the email is {size} bytes as queued; the queue takes at most "
            f"{self._pool.max_inline_bytes} and no S3 bucket (MAILPOOL_S3_BUCKET) is set for "
            "larger ones",
        )

    def _new_id(self, key: str | None, scope: str) -> str:
        if self._signer is not None:
            return self._signer.new_id(scope)
        return new_id() if key is None else idempotent_id(scope, key)

    def _with_unsubscribe(self, email: Email, scope: str, email_id: str) -> Email:
        """``email`` with RFC 8058 one-click List-Unsubscribe headers for its recipient."""
        public_url = None if self._state is None else self._state.config.public_url
        if self._signer is None or public_url is None:
            self._metrics.refused("unsubscribe_unavailable")
            raise ApiError(
                422,
                "unsubscribe_unavailable",
                "one-click unsubscribe needs the state store and MAILPOOL_PUBLIC_URL",
                "unsubscribe",
            )
        assert email.unsubscribe is not None
        what = Unsubscribe(scope, email.unsubscribe, email.recipients[0], email_id)
        links = [f"<{public_url}/unsubscribe/{self._signer.unsubscribe_token(what)}>"]
        mailto = self._state.config.unsubscribe_mailto if self._state is not None else None
        if mailto:
            links.append(f"<mailto:{mailto}?subject=unsubscribe>")
        headers = {
            **email.headers,
            "List-Unsubscribe": ", ".join(links),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        return dataclasses.replace(email, headers=headers)

    async def send(self, prepared: Prepared, deadline_s: float | None = None) -> str:
        """Enqueue; returns the id once SQS acknowledged it, else ApiError 503/422.

        A 503 means the email is not stored, except ``in_doubt``: SQS was asked but did not
        answer within the deadline and its margin, so it may be; a retry with the same
        Idempotency-Key is deduplicated either way.
        """
        started = time.perf_counter()
        try:
            body = prepared.body
            message = Outgoing(
                body=body.decode(),
                group=prepared.group,
                dedup_id=prepared.id,
                stream=prepared.stream,
            )
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
        except TooLarge:
            raise self._too_large(len(prepared.body)) from None
        except Rejected as exc:
            self._metrics.refused("rejected_by_queue")
            log.warning("queue rejected message", extra={"id": prepared.id, "code": exc.code})
            raise ApiError(422, "rejected_by_queue", "the queue refused the email") from None
        except AwsError as exc:
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

    async def accept(
        self, doc: Any, key: str | None, scope: str = DEFAULT_SCOPE, deadline_s: float | None = None
    ) -> str:
        """Validate and enqueue one email; with a key and the state store, at most once per
        key within its lifetime (the same request again answers the same id)."""
        prepared = self.prepare(doc, key, scope)
        self._admit_stream(scope, prepared.stream)
        return await self._enqueue(doc, key, scope, prepared, deadline_s)

    async def _enqueue(
        self, doc: Any, key: str | None, scope: str, prepared: Prepared, deadline_s: float | None
    ) -> str:
        if key is None or self._idempotency is None:
            return await self.send(prepared, deadline_s)
        # One deadline for the request: the claim and the send share it.
        budget = self._pool.config.send_deadline_s if deadline_s is None else deadline_s
        until = time.monotonic() + budget
        request = digest(doc)
        decision = await self._claim(scope, key, request, prepared.id, budget)
        if not decision.enqueue:  # already accepted: so are the copies waiting on this one
            self._idempotency.settle(decision, decision.email_id)
            return decision.email_id
        email_id: str | None = None
        try:
            if decision.email_id != prepared.id:  # taking over an abandoned claim: its id
                prepared = self.prepare(doc, key, scope, decision.email_id)
            email_id = await self.send(prepared, until - time.monotonic())
        finally:  # the same request waiting in this process gets the answer at once
            self._idempotency.settle(decision, email_id)
        # Marked after the answer, batched with other requests' marks: until it lands, a
        # retry finds the claim pending, waits, and at worst enqueues the same id again,
        # which SQS's 5-minute deduplication drops.
        self._mark(scope, key, decision, request)
        return email_id

    def _mark(self, scope: str, key: str, decision: Decision, request: str) -> None:
        assert self._idempotency is not None
        email_id = decision.email_id

        def marked(mark: "asyncio.Future[None]") -> None:
            self._marks.discard(mark)
            failed = None if mark.cancelled() else mark.exception()
            if failed is not None:
                self._mark_failed(email_id, failed)

        try:
            mark = self._idempotency.accepted(scope, key, decision, request)
        except AwsError as exc:
            self._mark_failed(email_id, exc)
            return
        self._marks.add(mark)
        mark.add_done_callback(marked)

    @staticmethod
    def _mark_failed(email_id: str, exc: BaseException) -> None:
        log.warning(
            "could not mark an idempotency key accepted",
            extra={"id": email_id, "error": type(exc).__name__},
        )

    async def settled(self) -> None:
        """Wait for the idempotency marks still being written (before the store closes)."""
        while self._marks:
            await asyncio.wait(self._marks)

    async def _claim(
        self, scope: str, key: str, request: str, email_id: str, deadline_s: float
    ) -> Decision:
        assert self._idempotency is not None
        try:
            return await self._idempotency.begin(scope, key, request, email_id, deadline_s)
        except Conflict as exc:
            self._metrics.refused("idempotency_conflict")
            raise ApiError(
                409,
                "idempotency_conflict",
                f"this Idempotency-Key was used for a different request (email {exc.email_id})",
                "Idempotency-Key",
            ) from None
        except AwsError as exc:
            self._metrics.refused("unavailable")
            log.warning("state store unavailable", extra={"error": type(exc).__name__})
            raise ApiError(
                503,
                "unavailable",
                "the idempotency store did not answer, so the email was not taken; retry with "
                "the same Idempotency-Key",
                retry_after=self._retry_after_s,
            ) from None

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

        def item_key(index: int) -> str | None:
            return None if key is None else batch_entry_key(key, index)

        spent: dict[str, int] = {}
        for index, doc in enumerate(docs):
            try:
                prepared = self.prepare(doc, item_key(index), scope)
                self._admit_stream(scope, prepared.stream, spent)
                valid.append((index, prepared))
            except ApiError as exc:
                exc.field = f"[{index}]" + ("" if exc.field is None else f".{exc.field}")
                results[index] = exc

        async def run_chain(chain: list[tuple[int, Prepared]]) -> None:
            failure: ApiError | None = None

            async def step(entry: tuple[int, Prepared]) -> bool:
                nonlocal failure
                index, prepared = entry
                try:
                    results[index] = await self._enqueue(
                        docs[index], item_key(index), scope, prepared, until - time.monotonic()
                    )
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
