"""The IAM names of AWS calls: (IAM action, resource kind) of each call the code makes, the
vocabulary of the call recorder (``aws.client.record_calls``) and of the policies that
``mailpool.iam`` holds to it.

Resource kinds: ``shard`` and ``shard-dlq`` (the pool's FIFO queues), ``events``,
``events-dlq``, ``ses-events``, ``ses-events-dlq`` (standard queues), ``table`` (the state
table), ``bucket`` and ``objects`` (the body bucket and the objects under its prefix), and
``identity`` (SES sending identities), ``secret`` (the state secret in Secrets Manager).
"""

import re
from typing import Any

#: IAM prefixes of the services mailpool calls (SES v2's API is authorised as ``ses:``).
_PREFIX = {"sqs": "sqs", "dynamodb": "dynamodb", "s3": "s3", "sesv2": "ses", "ses": "ses"}
#: Operations authorised by another action's name (batch calls, HeadBucket, transactions).
_AUTHORISED_AS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    "HeadBucket": "ListBucket",
    "HeadObject": "GetObject",
    # mailpool's transactions hold only conditional puts.
    "TransactWriteItems": "PutItem",
}


def queue_kind(name: str) -> str:
    """The kind of one of the pool's queues, from its name."""
    for suffix, kind in (
        ("-ses-events-dlq", "ses-events-dlq"),
        ("-ses-events", "ses-events"),
        ("-events-dlq", "events-dlq"),
        ("-events", "events"),
        ("-dlq.fifo", "shard-dlq"),
        (".fifo", "shard"),
    ):
        if name.endswith(suffix):
            return kind
    # A standard pool's shards: <prefix>-<k> and <prefix>-<k>-dlq.
    if re.search(r"-\d+-dlq$", name):
        return "shard-dlq"
    if re.search(r"-\d+$", name):
        return "shard"
    return "queue"


def call_of(service: str, operation: str, params: dict[str, Any]) -> tuple[str, str]:
    """(IAM action, resource kind) of one API call with ``params``."""
    action = f"{_PREFIX.get(service, service)}:{_AUTHORISED_AS.get(operation, operation)}"
    if "QueueUrl" in params:
        return action, queue_kind(str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1])
    if "QueueName" in params:
        return action, queue_kind(str(params["QueueName"]))
    if "TableName" in params or "RequestItems" in params or "TransactItems" in params:
        return action, "table"
    if "Bucket" in params:
        return action, "objects" if "Key" in params else "bucket"
    if "SecretId" in params:
        return action, "secret"
    if service in ("ses", "sesv2"):
        return action, "identity"
    return action, "*"
