"""Queues: names, attributes as SQS validates them, and the parsed settings the engine uses."""

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from localsqs.errors import SqsError, invalid

_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_RANGES = {
    "VisibilityTimeout": (0, 43_200),
    "MessageRetentionPeriod": (60, 1_209_600),
    "MaximumMessageSize": (1024, 1_048_576),
    "DelaySeconds": (0, 900),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "KmsDataKeyReusePeriodSeconds": (60, 86_400),
}
_BOOLEANS = ("FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled")
_ENUMS = {
    "DeduplicationScope": ("messageGroup", "queue"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
_FREE = ("Policy", "RedriveAllowPolicy", "KmsMasterKeyId", "RedrivePolicy")
_FIFO_ONLY = ("ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")
SETTABLE = (*_RANGES, *_BOOLEANS, *_ENUMS, *_FREE)
DEFAULTS = {
    "VisibilityTimeout": "30",
    "MessageRetentionPeriod": "345600",
    "MaximumMessageSize": "1048576",
    "DelaySeconds": "0",
    "ReceiveMessageWaitTimeSeconds": "0",
    "SqsManagedSseEnabled": "true",
}
FIFO_DEFAULTS = {
    "ContentBasedDeduplication": "false",
    "DeduplicationScope": "queue",
    "FifoThroughputLimit": "perQueue",
}


def check_name(name: str, fifo: bool) -> None:
    """QueueName rules: 1-80 letters, digits, - and _, plus ``.fifo`` for a FIFO queue."""
    base = name.removesuffix(".fifo")
    if not _NAME.fullmatch(base) or len(name) > 80:
        raise invalid(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
        )
    if fifo != name.endswith(".fifo"):
        raise invalid(
            "The name of a FIFO queue can only include alphanumeric characters, "
            "hyphens, or underscores, must end with .fifo suffix"
        )


def _check_value(name: str, value: str) -> str:
    if name in _RANGES:
        low, high = _RANGES[name]
        if not value.isdigit() or not low <= int(value) <= high:
            raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
        return str(int(value))
    if name in _BOOLEANS:
        if value.lower() not in ("true", "false"):
            raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
        return value.lower()
    if name in _ENUMS and value not in _ENUMS[name]:
        raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
    return value


def check_attributes(
    attributes: Mapping[str, str], *, fifo: bool, creating: bool
) -> dict[str, str]:
    """Validate settable attributes; returns them normalised."""
    checked: dict[str, str] = {}
    for name, value in attributes.items():
        if name not in SETTABLE:
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        if not isinstance(value, str):
            raise SqsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")
        if name in _FIFO_ONLY and not fifo:
            raise SqsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        if name == "FifoQueue" and not creating:
            raise SqsError("InvalidAttributeName", "FifoQueue cannot be changed.")
        checked[name] = _check_value(name, value)
    return checked


@dataclass(frozen=True, slots=True)
class Redrive:
    """Where a queue's messages go after ``max_receive_count`` receives."""

    target_arn: str
    max_receive_count: int


def parse_redrive(raw: str) -> Redrive | None:
    """The RedrivePolicy attribute (JSON); empty removes it."""
    if not raw:
        return None
    try:
        policy = orjson.loads(raw)
        target = str(policy["deadLetterTargetArn"])
        count = int(policy["maxReceiveCount"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise SqsError(
            "InvalidAttributeValue",
            "Value for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a "
            "valid JSON map with deadLetterTargetArn and maxReceiveCount.",
        ) from None
    if not 1 <= count <= 1000:
        raise SqsError(
            "InvalidAttributeValue",
            "Value for parameter RedrivePolicy is invalid. Reason: maxReceiveCount must be "
            "between 1 and 1000.",
        )
    return Redrive(target, count)


@dataclass(slots=True, eq=False)
class Queue:
    """A queue: its row, attributes, and the settings parsed from them."""

    id: int
    name: str
    attributes: dict[str, str]
    created: int
    modified: int
    arn: str = ""
    url: str = ""
    purged: int = 0
    fifo: bool = False
    visibility_ms: int = 30_000
    max_size: int = 1_048_576
    delay_ms: int = 0
    wait_s: int = 0
    retention_ms: int = 345_600_000
    content_dedup: bool = False
    dedup_per_group: bool = False
    redrive: Redrive | None = None
    #: Set (and replaced) whenever a long poll may find something new.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-read the typed settings from ``attributes``."""
        a = self.attributes
        self.fifo = a.get("FifoQueue") == "true"
        self.visibility_ms = int(a["VisibilityTimeout"]) * 1000
        self.max_size = int(a["MaximumMessageSize"])
        self.delay_ms = int(a["DelaySeconds"]) * 1000
        self.wait_s = int(a["ReceiveMessageWaitTimeSeconds"])
        self.retention_ms = int(a["MessageRetentionPeriod"]) * 1000
        self.content_dedup = a.get("ContentBasedDeduplication") == "true"
        self.dedup_per_group = a.get("DeduplicationScope") == "messageGroup"
        self.redrive = parse_redrive(a.get("RedrivePolicy", ""))

    def notify(self) -> None:
        """Wake every long poll waiting on this queue."""
        self.changed.set()
        self.changed = asyncio.Event()
