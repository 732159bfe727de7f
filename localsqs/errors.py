"""SQS errors as the JSON protocol carries them: a ``__type`` and a query-compatible code.

botocore reads ``x-amzn-query-error`` (SQS is ``awsQueryCompatible``) and reports its code,
so a client sees the same codes it would get from AWS (e.g.
``AWS.SimpleQueueService.NonExistentQueue`` for ``QueueDoesNotExist``).
"""

from typing import Any

_QUERY_CODES = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "PurgeQueueInProgress": "AWS.SimpleQueueService.PurgeQueueInProgress",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
    "QueueDeletedRecently": "AWS.SimpleQueueService.QueueDeletedRecently",
}


class SqsError(Exception):
    """An error answer: ``kind`` is the JSON ``__type`` name, ``sender`` who is at fault."""

    def __init__(self, kind: str, message: str, *, status: int = 400, sender: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.sender = sender

    @property
    def query_code(self) -> str:
        """The code the older query protocol used (what botocore reports)."""
        return _QUERY_CODES.get(self.kind, self.kind)

    def body(self) -> dict[str, str]:
        """The JSON body of the error answer."""
        return {"__type": f"com.amazonaws.sqs#{self.kind}", "message": self.message}

    def header(self) -> str:
        """The ``x-amzn-query-error`` header value."""
        return f"{self.query_code};{'Sender' if self.sender else 'Receiver'}"


def invalid(message: str) -> SqsError:
    """InvalidParameterValue."""
    return SqsError("InvalidParameterValue", message)


def missing(name: str) -> SqsError:
    """MissingParameter."""
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")


def no_queue() -> SqsError:
    """QueueDoesNotExist."""
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")


class DynamoError(Exception):
    """A DynamoDB error answer: ``kind`` is the ``__type`` name; ``item`` the existing item a
    failed condition returns when the request asked for it."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int = 400,
        item: dict[str, Any] | None = None,
        reasons: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.item = item
        self.reasons = reasons

    def body(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        body: dict[str, Any] = {
            "__type": f"com.amazonaws.dynamodb.v20120810#{self.kind}",
            "message": self.message,
        }
        if self.item is not None:
            body["Item"] = self.item
        if self.reasons is not None:
            body["CancellationReasons"] = self.reasons
        return body


class S3Error(Exception):
    """An S3 error: its code, message and HTTP status, and the fields S3 adds (Key, ...)."""

    def __init__(self, code: str, message: str, status: int = 400, **fields: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields
