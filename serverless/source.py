"""A local SQS event source: polls the pool's shards and invokes the Lambda worker the way
Lambda's event source mapping does, so the Lambda path runs on the embedded engine.

What it does as the mapping does (the Lambda developer guide, "Using Lambda with Amazon
SQS"): long-polls each queue for up to ``batch_size`` messages with every system attribute,
waits up to the batching window for a batch to fill, builds the documented event
(``{"Records": [...]}``), invokes with the function timeout, and then deletes the messages
the answer does not name in ``batchItemFailures``. A failed invocation (an exception, the
timeout) or an answer naming an id not in the batch deletes nothing: the whole batch comes
back when its visibility runs out. Invocations at once are capped: each shard's pollers by
its MaximumConcurrency (its stream's cap of the total), all of them by the total.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from aws.errors import AwsError
from core.backoff import backoff
from pool.config import PoolConfig
from pool.consumer import pause
from pool.sqs import SqsClient
from serverless.config import LambdaConfig
from serverless.records import record_of
from serverless.worker import LambdaWorker

log = logging.getLogger(__name__)


class LocalContext:
    """The part of Lambda's context object the handler reads: the clock."""

    def __init__(self, timeout_s: float, request_id: str) -> None:
        self._deadline = time.monotonic() + timeout_s
        self.aws_request_id = request_id
        self.function_name = "mailpool-sender"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalEventSource:
    """Event source mappings, one per shard, invoking ``worker`` in this process."""

    def __init__(
        self,
        worker: LambdaWorker,
        config: LambdaConfig,
        pool: PoolConfig,
        client: SqsClient,
        wait_s: int = 20,
    ) -> None:
        self._worker = worker
        self._wait_s = wait_s
        self._config = config
        self._pool = pool
        self._client = client
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._stopping = asyncio.Event()
        self._invocations = 0
        #: Invocations answered, failed (the whole batch back), and messages deleted.
        self.counts = {"invocations": 0, "failed": 0, "deleted": 0}

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop polling; invocations under way finish."""
        self._stopping.set()

    async def run(self) -> None:
        """Poll every shard until ``stop``."""
        queues = []
        for shard in range(self._pool.shards):
            url = await self._client.queue_url(self._pool.queue_name(shard))
            arn = (await self._client.attributes(url, ["QueueArn"]))["QueueArn"]
            queues.append((url, arn))
        # Several pollers per queue, as the mapping scales (FIFO hands each a different
        # group), as many as the shard's MaximumConcurrency: its stream's cap of the total.
        ceilings = self._config.shard_concurrency(self._pool)
        async with asyncio.TaskGroup() as tasks:
            for (url, arn), ceiling in zip(queues, ceilings, strict=True):
                for _ in range(ceiling):
                    tasks.create_task(self._poll(url, arn))

    async def _poll(self, url: str, arn: str) -> None:
        failures = 0
        while not self._stopping.is_set():
            async with self._slots:
                try:
                    batch = await self._batch(url)
                except AwsError as exc:
                    failures += 1
                    log.warning("receive failed", extra={"error": type(exc).__name__})
                    await pause(self._stopping, backoff(failures - 1, 0.25, 30.0))
                    continue
                failures = 0
                if batch:
                    await self._invoke(url, arn, batch)

    async def _batch(self, url: str) -> list[dict[str, Any]]:
        """Up to ``batch_size`` messages, waiting up to the batching window to fill."""
        size, window = self._config.batch_size, self._config.batching_window_s
        raw = await self._receive(url, size, self._wait_s)
        deadline = time.monotonic() + window
        while raw and len(raw) < size and time.monotonic() < deadline:
            more = await self._receive(url, size - len(raw), min(20, max(1, round(window))))
            if not more:
                break
            raw.extend(more)
        return raw

    async def _receive(self, url: str, count: int, wait_s: int) -> list[dict[str, Any]]:
        return await self._client.receive_raw(
            url,
            max_messages=count,
            wait_s=0 if self._stopping.is_set() else wait_s,
            visibility_s=self._pool.visibility_timeout_s,
        )

    async def _invoke(self, url: str, arn: str, batch: list[dict[str, Any]]) -> None:
        self._invocations += 1
        event = {"Records": [record_of(raw, arn) for raw in batch]}
        context = LocalContext(self._config.timeout_s, f"local-{self._invocations}")
        self.counts["invocations"] += 1
        try:
            async with asyncio.timeout(self._config.timeout_s):
                answer = await self._worker.invoke(event, context)
        except Exception as exc:  # an invocation error: the whole batch comes back
            self.counts["failed"] += 1
            log.error("invocation failed", extra={"error": type(exc).__name__, "count": len(batch)})
            return
        done = _succeeded(batch, answer)
        if done is None:
            self.counts["failed"] += 1
            log.error("an answer named a message not in its batch", extra={"count": len(batch)})
            return
        if done:
            await self._delete(url, done)

    async def _delete(self, url: str, receipts: list[str]) -> None:
        try:
            results = await self._client.delete_batch(url, receipts)
        except AwsError as exc:  # they come back when their visibility runs out
            log.warning("delete failed", extra={"error": type(exc).__name__})
            return
        self.counts["deleted"] += sum(1 for r in results if r is None)


def _succeeded(batch: list[dict[str, Any]], answer: Mapping[str, Any]) -> list[str] | None:
    """The receipts of the messages ``answer`` does not return; None when it is invalid."""
    ids = {raw["MessageId"] for raw in batch}
    try:
        failed = {str(item["itemIdentifier"]) for item in answer.get("batchItemFailures", [])}
    except (TypeError, KeyError):
        return None
    if not failed <= ids:
        return None
    return [raw["ReceiptHandle"] for raw in batch if raw["MessageId"] not in failed]
