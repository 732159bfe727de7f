"""What each mailpool process may do in AWS: IAM actions on kinds of resources.

``PERMISSIONS`` is the policy of each process kind, as (IAM action, resource kind) pairs;
the deployment template (``mailpool.cloudformation``) turns the kinds into ARNs. It is not
written from memory: the tests record every call the code makes (``aws.client.record_calls``,
named by ``aws.calls``) and hold each process's pairs to exactly what it was seen to call,
so nothing the code does is missing and nothing it never does is granted.

Resource kinds: ``shard`` and ``shard-dlq`` (the pool's FIFO queues), ``events``,
``events-dlq``, ``ses-events``, ``ses-events-dlq`` (standard queues), ``table`` (the state
table), ``bucket`` and ``objects`` (the body bucket and the objects under its prefix), and
``identity`` (SES sending identities), ``secret`` (the state secret).
"""

from typing import Any

#: Each process kind's (IAM action, resource kind) pairs: exactly what it was seen to call
#: (tests/test_least_privilege.py holds this to the record of a whole ``make test``).
# fmt: off
PERMISSIONS: dict[str, frozenset[tuple[str, str]]] = {
    "intake": frozenset({
        ("dynamodb:BatchGetItem", "table"), ("dynamodb:BatchWriteItem", "table"),
        ("dynamodb:DeleteItem", "table"),
        ("dynamodb:DescribeTable", "table"), ("dynamodb:GetItem", "table"),
        ("dynamodb:PutItem", "table"), ("dynamodb:Query", "table"),
        ("s3:PutObject", "objects"),
        ("sqs:GetQueueAttributes", "events"), ("sqs:GetQueueAttributes", "events-dlq"),
        ("sqs:GetQueueAttributes", "shard"), ("sqs:GetQueueAttributes", "shard-dlq"),
        ("sqs:GetQueueUrl", "events"), ("sqs:GetQueueUrl", "events-dlq"),
        ("sqs:GetQueueUrl", "shard"), ("sqs:GetQueueUrl", "shard-dlq"),
        ("sqs:SendMessage", "events"), ("sqs:SendMessage", "shard"),
    }),
    "sender": frozenset({
        ("dynamodb:BatchGetItem", "table"), ("dynamodb:BatchWriteItem", "table"),
        ("dynamodb:DescribeTable", "table"),
        ("s3:DeleteObject", "objects"), ("s3:GetObject", "objects"),
        ("ses:SendEmail", "identity"),
        ("sqs:ChangeMessageVisibility", "shard"), ("sqs:DeleteMessage", "shard"),
        ("sqs:GetQueueAttributes", "shard"), ("sqs:GetQueueAttributes", "shard-dlq"),
        ("sqs:GetQueueUrl", "events"), ("sqs:GetQueueUrl", "events-dlq"),
        ("sqs:GetQueueUrl", "shard"), ("sqs:GetQueueUrl", "shard-dlq"),
        ("sqs:ReceiveMessage", "shard"),
        ("sqs:SendMessage", "events"), ("sqs:SendMessage", "shard-dlq"),
    }),
    # The Lambda worker and its event source mappings (which call as the function's role:
    # ReceiveMessage, DeleteMessage, GetQueueAttributes); the mappings delete what it sent.
    # On a standard queue it claims each email (PutItem, DeleteItem to release).
    "lambda": frozenset({
        ("dynamodb:BatchGetItem", "table"), ("dynamodb:BatchWriteItem", "table"),
        ("dynamodb:DeleteItem", "table"), ("dynamodb:DescribeTable", "table"),
        ("dynamodb:PutItem", "table"),
        ("s3:DeleteObject", "objects"), ("s3:GetObject", "objects"),
        ("secretsmanager:GetSecretValue", "secret"),
        ("ses:SendEmail", "identity"),
        ("sqs:ChangeMessageVisibility", "shard"), ("sqs:DeleteMessage", "shard"),
        ("sqs:GetQueueAttributes", "shard"),
        ("sqs:GetQueueUrl", "events"), ("sqs:GetQueueUrl", "events-dlq"),
        ("sqs:GetQueueUrl", "shard"), ("sqs:GetQueueUrl", "shard-dlq"),
        ("sqs:ReceiveMessage", "shard"),
        ("sqs:SendMessage", "events"), ("sqs:SendMessage", "shard-dlq"),
    }),
    "webhooks": frozenset({
        ("dynamodb:BatchWriteItem", "table"), ("dynamodb:DescribeTable", "table"),
        ("sqs:ChangeMessageVisibility", "events"),
        ("sqs:DeleteMessage", "events"), ("sqs:DeleteMessage", "ses-events"),
        ("sqs:GetQueueUrl", "events"), ("sqs:GetQueueUrl", "events-dlq"),
        ("sqs:GetQueueUrl", "ses-events"), ("sqs:GetQueueUrl", "ses-events-dlq"),
        ("sqs:GetQueueUrl", "shard"), ("sqs:GetQueueUrl", "shard-dlq"),
        ("sqs:ReceiveMessage", "events"), ("sqs:ReceiveMessage", "ses-events"),
        ("sqs:SendMessage", "events"), ("sqs:SendMessage", "events-dlq"),
        ("sqs:SendMessage", "ses-events-dlq"),
    }),
}
# fmt: on


def statements(role: str, arns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """``role``'s policy statements: per resource kind, its actions on the ARNs ``arns``
    gives that kind (a kind with no ARNs here, such as the bucket when there is none, is
    left out)."""
    by_kind: dict[str, list[str]] = {}
    for action, kind in sorted(PERMISSIONS[role]):
        by_kind.setdefault(kind, []).append(action)
    return [
        {"Effect": "Allow", "Action": actions, "Resource": arns[kind]}
        for kind, actions in sorted(by_kind.items())
        if arns.get(kind)
    ]
