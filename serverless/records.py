"""SQS event records, as Lambda's event source mapping builds them, and back.

A record (the Lambda developer guide's SQS event example): ``messageId``,
``receiptHandle``, ``body``, ``attributes`` (the message's system attributes,
``ApproximateReceiveCount``, ``SentTimestamp``, on FIFO ``MessageGroupId``,
``SequenceNumber``, ``MessageDeduplicationId``), ``messageAttributes`` (``stringValue``,
``binaryValue``, ``stringListValues``, ``binaryListValues``, ``dataType``), ``md5OfBody``,
``md5OfMessageAttributes`` (when there are some), ``eventSource`` (``aws:sqs``),
``eventSourceARN`` and ``awsRegion``.
"""

import base64
from collections.abc import Mapping
from typing import Any

from pool.blobs import pointer_of
from pool.config import PoolConfig
from pool.messages import Received


class NotOurs(ValueError):
    """A record from a queue that is not a shard of this pool."""


def queue_arn(region: str, account: str, name: str) -> str:
    """The ARN of queue ``name``."""
    return f"arn:aws:sqs:{region}:{account}:{name}"


def record_of(raw: Mapping[str, Any], arn: str) -> dict[str, Any]:
    """The Lambda event record for a message of a ReceiveMessage answer (received with
    every system attribute) from the queue ``arn``."""
    record: dict[str, Any] = {
        "messageId": raw["MessageId"],
        "receiptHandle": raw["ReceiptHandle"],
        "body": raw.get("Body", ""),
        "attributes": dict(raw.get("Attributes", {})),
        "messageAttributes": {
            name: _attribute(value) for name, value in raw.get("MessageAttributes", {}).items()
        },
        "md5OfBody": raw.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": arn.split(":")[3],
    }
    if "MD5OfMessageAttributes" in raw:
        record["md5OfMessageAttributes"] = raw["MD5OfMessageAttributes"]
    return record


def _attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": None if binary is None else base64.b64encode(binary).decode(),
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": list(value.get("BinaryListValues", [])),
        "dataType": value["DataType"],
    }


class Shards:
    """Which shard of the pool a record's queue is, by the queue name in its ARN."""

    def __init__(self, config: PoolConfig) -> None:
        self._by_name = {config.queue_name(k): k for k in range(config.shards)}

    def received(self, record: Mapping[str, Any]) -> Received:
        """The message a record carries, as the sender's code reads it."""
        name = str(record.get("eventSourceARN", "")).rsplit(":", 1)[-1]
        shard = self._by_name.get(name)
        if shard is None:
            raise NotOurs(f"a record from {name or 'no queue'}, not a shard of this pool")
        system = record.get("attributes", {})
        body = record.get("body", "")
        return Received(
            shard=shard,
            message_id=record["messageId"],
            receipt=record["receiptHandle"],
            body=body,
            group=system.get("MessageGroupId", ""),
            receive_count=int(system.get("ApproximateReceiveCount", "1")),
            sent_at=int(system.get("SentTimestamp", "0")) / 1000.0,
            attributes={
                k: v.get("stringValue") or ""
                for k, v in record.get("messageAttributes", {}).items()
                if v.get("dataType", "String").startswith(("String", "Number"))
            },
            blob=pointer_of(body),
        )
