"""The Lambda part of the deployment template (``mailpool deploy template --worker lambda``):
the sender as a function on the pool's queues.

One function (``serverless.handler.handler``, code from ``mailpool deploy package`` in S3)
with one SQS event source mapping per shard: batch size and batching window as configured,
``ReportBatchItemFailures`` (the handler answers partial batches), and a maximum
concurrency per shard: its stream's cap of the configured one, split over the stream's shards
(at least 2 each, Lambda's floor), so bulk's mappings never take what transactional needs.
Its role may do exactly what the worker and its mappings were seen to call (``mailpool.iam``'s
``lambda``), write its own log group (30 days) and read the state secret,
whose ARN it is given instead of the secret. Alarms: the function's errors and throttles
(the shards' oldest-message and DLQ alarms are the template's own), and a dashboard of what
its metrics lines feed (outcomes, accepted-to-sent), the function's errors, throttles and
concurrency, and each shard's oldest message. The queues' visibility
timeout is six times the function timeout, as Lambda asks.

The function is made only when ``LambdaCodeKey`` names the package in ``LambdaCodeBucket``.
"""

import json
import math
from typing import Any

from mailpool import hardening
from pool.config import PoolConfig
from serverless.config import LambdaConfig

RUNTIME = "python3.11"
HANDLER = "serverless.handler.handler"
MEMORY_MB = 512
FUNCTION_NAME = "${AWS::StackName}-sender"
LOG_GROUP = "/aws/lambda/" + FUNCTION_NAME

LAMBDA_ASSUME = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ],
}
_VPC_SKIP = "the worker reaches only AWS APIs and the SMTP relay or SES; no VPC resource"
_DLQ_SKIP = "an SQS event source: failed messages go to each shard's redrive DLQ"
_SIGNING_SKIP = "the package is built from the project's wheels by `mailpool deploy package`"


def visibility_for(config: LambdaConfig) -> int:
    """The queues' visibility timeout for a function of ``config.timeout_s``: 6 times it."""
    return 6 * math.ceil(config.timeout_s)


def environment(config: LambdaConfig) -> dict[str, str]:
    """The function's settings beyond the stack's ``Environment``."""
    return {
        "MAILPOOL_LAMBDA_MARGIN": str(config.margin_s),
        "MAILPOOL_LAMBDA_TIMEOUT": str(config.timeout_s),
        "MAILPOOL_LAMBDA_BATCH_SIZE": str(config.batch_size),
        "MAILPOOL_LAMBDA_WINDOW": str(config.batching_window_s),
        "MAILPOOL_LAMBDA_CONCURRENCY": str(config.max_concurrency),
        "MAILPOOL_STATE_SECRET_ARN": "${StateSecret}",
    }


def _settable(env: dict[str, str]) -> dict[str, str]:
    """``env`` less what Lambda sets itself (and refuses to be given): AWS_REGION."""
    return {k: v for k, v in env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}


def _role(statements: list[dict[str, Any]]) -> dict[str, Any]:
    logs = {
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [{"Fn::Sub": "${SenderFunctionLogs.Arn}"}],
    }
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "mailpool's Lambda worker: exactly the calls it and its mappings make",
            "AssumeRolePolicyDocument": LAMBDA_ASSUME,
            "Policies": [
                {
                    "PolicyName": "mailpool-lambda",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": [*statements, logs]},
                }
            ],
        },
    }


def _function(config: LambdaConfig, env: dict[str, str], kms: bool) -> dict[str, Any]:
    variables = {k: {"Fn::Sub": v} if "${" in v else v for k, v in env.items()}
    props: dict[str, Any] = {
        "FunctionName": {"Fn::Sub": FUNCTION_NAME},
        "Description": "mailpool's sender as a Lambda function on the pool's queues",
        "Runtime": RUNTIME,
        "Handler": HANDLER,
        "Architectures": ["x86_64"],
        "Code": {"S3Bucket": {"Ref": "LambdaCodeBucket"}, "S3Key": {"Ref": "LambdaCodeKey"}},
        "Role": {"Fn::GetAtt": ["SenderFunctionRole", "Arn"]},
        "Timeout": math.ceil(config.timeout_s),
        "MemorySize": MEMORY_MB,
        "ReservedConcurrentExecutions": {"Ref": "LambdaReservedConcurrency"},
        "Environment": {"Variables": variables},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": {"Ref": "SenderFunctionLogs"}},
    }
    function: dict[str, Any] = {
        "Type": "AWS::Lambda::Function",
        "Condition": "LambdaWorker",
        "Properties": props,
    }
    skips = [("CKV_AWS_117", _VPC_SKIP), ("CKV_AWS_116", _DLQ_SKIP), ("CKV_AWS_272", _SIGNING_SKIP)]
    if kms:
        props["KmsKeyArn"] = {"Fn::GetAtt": ["StackKey", "Arn"]}
    else:
        skips.append(("CKV_AWS_173", hardening.KMS_SKIP))
    return hardening.skip(function, *skips)


def _mapping(shard: int, config: LambdaConfig, per_shard: int) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Condition": "LambdaWorker",
        "Properties": {
            "EventSourceArn": {"Fn::GetAtt": [f"Shard{shard}Queue", "Arn"]},
            "FunctionName": {"Ref": "SenderFunction"},
            "BatchSize": config.batch_size,
            "MaximumBatchingWindowInSeconds": math.ceil(config.batching_window_s),
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": per_shard},
        },
    }


def _alarm(description: str, metric: str) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Condition": "LambdaWorker",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": "AWS/Lambda",
            "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": "SenderFunction"}}],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 3,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    }


def _dashboard(pool: PoolConfig) -> dict[str, Any]:
    """The worker's CloudWatch dashboard: what its metrics lines feed, beside Lambda's and
    the shards' own metrics."""

    def widget(title: str, metrics: list[list[Any]], stat: str, at: int) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": 12 * (at % 2),
            "y": 6 * (at // 2),
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "metrics": metrics,
                "stat": stat,
                "period": 60,
                "region": "${AWS::Region}",
            },
        }

    outcomes = [
        ["mailpool", f"emails_{o}", "service", "sender"]
        for o in ("delivered", "retried", "dead_lettered", "released", "duplicate")
    ]
    latency = [
        ["mailpool", "accepted_to_sent", "service", "sender", {"stat": stat}]
        for stat in ("p50", "p99")
    ]
    function = [
        ["AWS/Lambda", metric, "FunctionName", FUNCTION_NAME]
        for metric in ("Errors", "Throttles", "ConcurrentExecutions")
    ]
    ages = [
        ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", pool.queue_name(k)]
        for k in range(pool.shards)
    ]
    body = {
        "widgets": [
            widget("emails by outcome (per minute)", outcomes, "Sum", 0),
            widget("accepted to sent (ms)", latency, "p99", 1),
            widget("the function", function, "Sum", 2),
            widget("oldest message per shard (s)", ages, "Maximum", 3),
        ]
    }
    return {
        "Type": "AWS::CloudWatch::Dashboard",
        "Condition": "LambdaWorker",
        "Properties": {
            "DashboardName": {"Fn::Sub": "${AWS::StackName}-lambda-worker"},
            "DashboardBody": {"Fn::Sub": json.dumps(body)},
        },
    }


def resources(
    pool: PoolConfig,
    config: LambdaConfig,
    env: dict[str, str],
    statements: list[dict[str, Any]],
    kms: bool,
) -> dict[str, dict[str, Any]]:
    """The function, its role, log group, mappings and alarms, by logical ID."""
    logs: dict[str, Any] = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": {"Fn::Sub": LOG_GROUP}, "RetentionInDays": 30},
    }
    if kms:
        logs["Properties"]["KmsKeyId"] = {"Fn::GetAtt": ["StackKey", "Arn"]}
    else:
        hardening.skip(logs, ("CKV_AWS_158", hardening.KMS_SKIP))
    ceilings = config.shard_concurrency(pool, floor=2)
    return {
        "SenderFunctionRole": _role(statements),
        "SenderFunctionLogs": logs,
        "SenderFunction": _function(config, {**_settable(env), **environment(config)}, kms),
        **{f"Shard{k}EventSource": _mapping(k, config, n) for k, n in enumerate(ceilings)},
        "SenderFunctionErrorsAlarm": _alarm("the Lambda worker's invocations failed", "Errors"),
        "SenderFunctionThrottlesAlarm": _alarm(
            "the Lambda worker was throttled (reserved or account concurrency)", "Throttles"
        ),
        "SenderFunctionDashboard": _dashboard(pool),
    }
