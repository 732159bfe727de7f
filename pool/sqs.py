"""The module that speaks to SQS: pool types and errors in and out (over ``aws.client``).

Retries are not botocore's business here (``total_max_attempts=1``): the pool retries
failed batch entries itself, with jitter and under each caller's deadline, so a failure
path is the same whether a whole call or one entry of a batch failed.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from aws.client import AwsClient, error_code, is_setup_error, never_sent
from aws.errors import (
    AwsError,
    Misconfigured,
    NoAnswer,
    QueueMissing,
    Rejected,
    Throttled,
    Unavailable,
)
from pool.config import PoolConfig
from pool.messages import Outgoing, Received

_MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
)
_SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp", "MessageGroupId"]


def _is_throttle(code: str) -> bool:
    return "Throttl" in code or code in ("RequestThrottled", "SlowDown")


def error_for(code: str, message: str, *, server_fault: bool) -> AwsError:
    """Map an SQS error code (of a call or of one batch entry) to the pool's error."""
    if _is_throttle(code):
        return Throttled(message, code=code)
    if code in _MISSING_QUEUE_CODES:
        return QueueMissing(message, code=code)
    if server_fault:
        return Unavailable(message, code=code)
    return Rejected(message, code=code)


class SqsClient(AwsClient):
    """The SQS client of the pool; every call maps failures onto ``aws.errors``."""

    service = "sqs"

    @classmethod
    def from_config(cls, config: PoolConfig) -> "SqsClient":
        """A client set up from the pool's configuration."""
        return cls(
            region=config.region,
            endpoint_url=config.endpoint_url,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
            max_connections=config.max_connections,
        )

    def failure(self, action: str, exc: Exception) -> AwsError:
        """Map a failed call onto the pool's errors."""
        code, status = error_code(exc)
        if code:
            return error_for(code, f"{action}: {code}", server_fault=status >= 500)
        if is_setup_error(exc):
            return Misconfigured(f"{action}: {type(exc).__name__}")
        if never_sent(exc):
            return Unavailable(f"{action}: {type(exc).__name__}")
        # Sent, perhaps taken, but unanswered (read timeout, connection lost mid-call).
        return NoAnswer(f"{action}: {type(exc).__name__}")

    async def queue_url(self, name: str) -> str:
        """URL of the queue called ``name``."""
        result = await self._call("get_queue_url", QueueName=name)
        return str(result["QueueUrl"])

    async def create_queue(self, name: str, attributes: Mapping[str, str]) -> str:
        """Create ``name`` (a no-op when it exists with the same attributes); its URL."""
        result = await self._call("create_queue", QueueName=name, Attributes=dict(attributes))
        return str(result["QueueUrl"])

    async def set_attributes(self, url: str, attributes: Mapping[str, str]) -> None:
        """Set queue attributes."""
        await self._call("set_queue_attributes", QueueUrl=url, Attributes=dict(attributes))

    async def attributes(self, url: str, names: Sequence[str] = ("All",)) -> dict[str, str]:
        """Queue attributes by name."""
        result = await self._call("get_queue_attributes", QueueUrl=url, AttributeNames=list(names))
        return dict(result.get("Attributes", {}))

    async def delete_queue(self, url: str) -> None:
        """Delete a queue."""
        await self._call("delete_queue", QueueUrl=url)

    async def purge(self, url: str) -> None:
        """Delete every message of a queue."""
        await self._call("purge_queue", QueueUrl=url)

    async def list_queues(self, prefix: str) -> list[str]:
        """URLs of the queues whose names start with ``prefix``."""
        urls: list[str] = []
        kwargs: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
        while True:
            result = await self._call("list_queues", **kwargs)
            urls.extend(result.get("QueueUrls", []))
            token = result.get("NextToken")
            if not token:
                return urls
            kwargs["NextToken"] = token

    async def send_batch(self, url: str, messages: Sequence[Outgoing]) -> list[str | AwsError]:
        """SendMessageBatch: per message, its SQS message ID or the error of its entry."""
        entries = []
        # A standard queue (its name has no .fifo) takes neither group nor deduplication ID.
        fifo = url.endswith(".fifo")
        for index, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
            if message.group and fifo:
                entry["MessageGroupId"] = message.group
                entry["MessageDeduplicationId"] = message.dedup_id
            if message.delay_s:
                entry["DelaySeconds"] = message.delay_s
            if message.attributes:
                entry["MessageAttributes"] = {
                    k: {"DataType": "String", "StringValue": v}
                    for k, v in message.attributes.items()
                }
            entries.append(entry)
        result = await self._call("send_message_batch", QueueUrl=url, Entries=entries)
        # An entry the answer does not mention may have been stored: its outcome is in doubt.
        outcome: list[str | AwsError] = [
            NoAnswer("SendMessageBatch: no answer for the entry")
        ] * len(messages)
        for ok in result.get("Successful", []):
            outcome[int(ok["Id"])] = str(ok["MessageId"])
        for failed in result.get("Failed", []):
            outcome[int(failed["Id"])] = error_for(
                str(failed.get("Code", "Unknown")),
                f"SendMessageBatch entry: {failed.get('Code', 'Unknown')}",
                server_fault=not failed.get("SenderFault", False),
            )
        return outcome

    async def receive(
        self, url: str, shard: int, *, max_messages: int, wait_s: int, visibility_s: int
    ) -> list[Received]:
        """ReceiveMessage with long polling; system attributes decoded."""
        raw = await self.receive_raw(
            url,
            max_messages=max_messages,
            wait_s=wait_s,
            visibility_s=visibility_s,
            system=_SYSTEM_ATTRIBUTES,
        )
        return [received_of(message, shard) for message in raw]

    async def receive_raw(
        self,
        url: str,
        *,
        max_messages: int,
        wait_s: int,
        visibility_s: int,
        system: Sequence[str] = ("All",),
    ) -> list[dict[str, Any]]:
        """ReceiveMessage with long polling: the messages as SQS answered them (with every
        system attribute unless told which), for a caller that passes them on whole."""
        result = await self._call(
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=visibility_s,
            MessageSystemAttributeNames=list(system),
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = result.get("Messages", [])
        return messages

    async def delete_batch(self, url: str, receipts: Sequence[str]) -> list[AwsError | None]:
        """DeleteMessageBatch: per receipt, None or the error of its entry."""
        entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)]
        result = await self._call("delete_message_batch", QueueUrl=url, Entries=entries)
        return self._entry_outcomes(result, len(receipts), "DeleteMessageBatch")

    async def change_visibility_batch(
        self, url: str, changes: Sequence[tuple[str, int]]
    ) -> list[AwsError | None]:
        """ChangeMessageVisibilityBatch: per (receipt, seconds), None or its entry's error."""
        entries = [
            {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": s}
            for i, (r, s) in enumerate(changes)
        ]
        result = await self._call("change_message_visibility_batch", QueueUrl=url, Entries=entries)
        return self._entry_outcomes(result, len(changes), "ChangeMessageVisibilityBatch")

    @staticmethod
    def _entry_outcomes(result: dict[str, Any], count: int, action: str) -> list[AwsError | None]:
        # Only an entry the answer lists as successful succeeded.
        outcome: list[AwsError | None] = [NoAnswer(f"{action}: no answer for the entry")] * count
        for ok in result.get("Successful", []):
            outcome[int(ok["Id"])] = None
        for failed in result.get("Failed", []):
            code = str(failed.get("Code", "Unknown"))
            outcome[int(failed["Id"])] = error_for(
                code, f"{action} entry: {code}", server_fault=not failed.get("SenderFault", False)
            )
        return outcome


def received_of(raw: Mapping[str, Any], shard: int) -> Received:
    """A message of a ReceiveMessage answer as the pool reads it."""
    system = raw.get("Attributes", {})
    return Received(
        shard=shard,
        message_id=raw["MessageId"],
        receipt=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        group=system.get("MessageGroupId", ""),
        receive_count=int(system.get("ApproximateReceiveCount", "1")),
        sent_at=int(system.get("SentTimestamp", "0")) / 1000.0,
        attributes={
            k: v.get("StringValue", "") for k, v in raw.get("MessageAttributes", {}).items()
        },
    )
