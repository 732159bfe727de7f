"""LambdaWorker: the sender's delivery code behind a Lambda face.

Opened once per execution environment (its clients, connections and the suppression cache
survive between warm invocations), it answers one SQS event at a time under Lambda, or
several at once under the local event source. Each invocation: the records become the
messages the sender reads, a ``Batch`` decides and settles them, and the answer names the
ones that go back (``ReportBatchItemFailures``).
"""

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Protocol, Self

from aws.client import acting_as
from core.health import Health
from core.sealing import Keyring
from core.service import BackgroundService
from core.settings import SettingError
from pool.blobs import BlobStore
from pool.config import PoolConfig
from pool.messages import Received
from sender.config import SenderConfig
from sender.parts import SenderParts
from sender.providers.base import Provider
from serverless.batch import Batch, Tally
from serverless.config import LambdaConfig
from serverless.records import NotOurs, Shards
from state.claims import Claims
from state.config import StateConfig

log = logging.getLogger(__name__)


class Context(Protocol):
    """What the handler reads of Lambda's context object."""

    def get_remaining_time_in_millis(self) -> int: ...


class WorkerDied(RuntimeError):
    """A background task of the worker (a flusher of its pool) died: it must be reopened."""


class LambdaWorker(BackgroundService):
    """Answers SQS events from the pool's shards with partial batch responses. Its parts
    (provider, pool, state) open and close as a ``BackgroundService``'s; it runs no main
    task of its own (the pool's flushers are watched by ``health``)."""

    def __init__(
        self,
        pool_config: PoolConfig,
        sender_config: SenderConfig,
        config: LambdaConfig,
        provider: Provider,
        keyring: Keyring | None = None,
        blobs: BlobStore | None = None,
        state: StateConfig | None = None,
        *,
        metrics_line: bool = False,
        claims: bool | None = None,
    ) -> None:
        super().__init__(Health())
        self.config = config
        own = pool_config.without_ses_feedback
        in_flight = config.max_concurrency * config.batch_size
        self.parts = parts = SenderParts.assemble(
            pool_config,
            sender_config,
            provider,
            self.health,
            concurrency=in_flight,
            keyring=keyring,
            blobs=blobs,
            state=state,
        )
        self.registry, self.pool, self.provider = parts.registry, parts.pool, parts.provider
        self.metrics, self.state = parts.metrics, parts.state
        self.metrics.prepare(own.shards, [self.provider.name], self.pool.streams)
        # A throttled provider is waited out only while the invocation lasts.
        budget = min(sender_config.delay_budget_s, config.timeout_s - config.margin_s)
        limited = dataclasses.replace(sender_config, delay_budget_s=budget)
        self._delivery = parts.delivery(limited, lambda: False)
        self._settler = parts.settler(source_deletes=True)
        self._shards = Shards(own)
        self._metrics_line = metrics_line
        #: On a standard queue, each email is claimed before it is sent (``claims``: force
        #: it on or off, as the duplicates benchmark does).
        self.claims: Claims | None = None
        if (own.queue_type == "standard") if claims is None else claims:
            if self.state is None:
                raise SettingError(
                    "standard queues need the state store for delivery claims: MAILPOOL_STATE=on"
                )
            keep = self.state.config.idempotency_s
            self.claims = Claims(self.state.table, hold_s=config.timeout_s, keep_s=keep)

    async def __aenter__(self) -> Self:
        with acting_as("lambda"):
            return await super().__aenter__()

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        await self.parts.open(stack)

    def stop(self) -> None:
        """Nothing runs between invocations."""

    async def invoke(self, event: Mapping[str, Any], context: Context) -> dict[str, Any]:
        """Answer one SQS event: ``{"batchItemFailures": [{"itemIdentifier": id}, …]}``."""
        if not self.health.ok:
            raise WorkerDied(f"{self.health.failure} died")
        messages: list[Received] = []
        foreign: list[str] = []
        for record in event.get("Records", []):
            try:
                messages.append(self._shards.received(record))
            except NotOurs as exc:  # it goes back, and on to its own queue's DLQ
                log.error(
                    "a record not from this pool",
                    extra={"sqs_id": record.get("messageId"), "error": str(exc)[:80]},
                )
                foreign.append(str(record.get("messageId", "")))
        for message in messages:
            self.metrics.received(message.shard, 1)
        batch = Batch(
            self.config,
            self.pool,
            self._delivery,
            self._settler,
            self.metrics,
            lambda: context.get_remaining_time_in_millis() / 1000,
            self.claims,
        )
        with acting_as("lambda"):
            failed = await batch.run(messages)
        if self._metrics_line:
            metrics_line(batch.tally)
        return {"batchItemFailures": [{"itemIdentifier": i} for i in foreign + failed]}


def metrics_line(tally: Tally) -> None:
    """Print the invocation's outcomes as one CloudWatch Embedded Metric Format line
    (Powertools' ``Metrics``): CloudWatch turns it into metrics, no API call made."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace="mailpool", service="sender")
    for outcome, count in sorted(tally.outcomes.items()):
        metrics.add_metric(name=f"emails_{outcome}", unit=MetricUnit.Count, value=count)
    for seconds in tally.latencies:
        metrics.add_metric(
            name="accepted_to_sent", unit=MetricUnit.Milliseconds, value=round(seconds * 1000, 1)
        )
    if tally.outcomes:
        metrics.flush_metrics()
