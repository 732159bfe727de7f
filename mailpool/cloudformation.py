"""The AWS footprint as one CloudFormation template: ``mailpool deploy template``.

Built from the definitions ``mailpool queues create`` uses (``pool.provision``'s queue
attributes, ``state.table``'s key schema and TTL, ``pool.blobs``' lifecycle rule) and the
IAM permissions the tests prove (``mailpool.iam``), so the two ways to create mailpool's
resources cannot disagree. What it makes:

- the pool (per shard a FIFO queue and its FIFO DLQ, redrive, SSE), the events queue and
  its DLQ, the SES feedback queue and its DLQ when enabled;
- the state table (on demand, TTL, SSE, point-in-time recovery) and the body bucket (SSE,
  public access blocked, lifecycle expiry, access logs), every one of them and every queue
  refusing requests without TLS (``mailpool.hardening``); the stack's secrets in Secrets
  Manager, and with ``kms`` one customer-managed key for all of it;
- one IAM role per process kind (intake, sender, webhooks), each allowed exactly the actions
  on exactly the resources its process uses;
- CloudWatch alarms on each shard's ``ApproximateAgeOfOldestMessage`` and on every DLQ's
  depth;
- with an ``ImageUri`` (and a VPC, subnets, a certificate and API key digests): an ECS
  Fargate cluster running intake behind an HTTPS-only Application Load Balancer (internal
  unless rendered ``internet-facing``), senders and webhooks, senders step-scaled on the
  oldest message's age across shards and intakes target-tracked on requests per target.

Outputs: queue URLs, the table and bucket names, the role ARNs, and ``Environment``: the
``KEY=value`` pairs (space-separated) a mailpool process needs to use these resources.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml

from core.settings import SettingError
from mailpool import ecs, functions, hardening, iam
from mailpool.parameters import RULES, parameters
from pool.blobs import BlobConfig, lifecycle_rule
from pool.config import PoolConfig
from pool.provision import dlq_attributes, events_attributes, queue_attributes
from serverless.config import LambdaConfig
from state import table as state_table

ROLES = ("intake", "sender", "webhooks")
WORKERS = ("ecs", "lambda")


@dataclass(frozen=True, kw_only=True, slots=True)
class DeployConfig:
    """What the template describes: the pool, the providers, and the retention of bodies."""

    pool: PoolConfig = field(default_factory=PoolConfig)
    blobs: BlobConfig = field(default_factory=BlobConfig)
    providers: tuple[str, ...] = ("ses",)
    #: Requests per intake task that Application Auto Scaling keeps to.
    requests_per_intake: int = 1000
    #: The load balancer's scheme: ``internal`` (producers in the VPC) or ``internet-facing``.
    scheme: str = "internal"
    #: The ACM certificate of the HTTPS listener (the ``CertificateArn`` parameter's default);
    #: an internet-facing load balancer is not rendered without one.
    certificate_arn: str = ""
    #: One customer-managed KMS key, made by the stack, for queues, table, bodies, secrets
    #: and logs (else each service's own encryption at rest).
    kms: bool = False
    #: Where senders run: ``ecs`` (the ``mailpool sender`` task, with an ``ImageUri``) or
    #: ``lambda`` (the Lambda worker on event source mappings, ``mailpool.functions``).
    worker: str = "ecs"
    #: The Lambda worker's timeout, margin, batching and concurrency.
    lambda_worker: LambdaConfig = field(default_factory=LambdaConfig)

    def __post_init__(self) -> None:
        if self.worker not in WORKERS:
            raise SettingError(f"the worker is ecs or lambda, not {self.worker!r}")
        if not self.pool.fifo and self.worker != "lambda":
            raise SettingError(
                "standard queues (MAILPOOL_QUEUE_TYPE=standard) are the Lambda worker's "
                "variant: --worker lambda"
            )
        if self.scheme not in ("internal", "internet-facing"):
            raise SettingError(
                f"the load balancer's scheme is internal or internet-facing, not {self.scheme!r}"
            )
        if self.scheme == "internet-facing" and not self.certificate_arn:
            raise SettingError(
                "an internet-facing load balancer needs a certificate: --certificate-arn "
                "(an ACM certificate ARN), or --scheme internal"
            )


def _name(kind: str, shard: int | None = None) -> str:
    """A resource's logical ID."""
    words = "".join(part.capitalize() for part in kind.split("-"))
    return f"Shard{shard}{words[5:] or 'Queue'}" if shard is not None else words


def _attributes(raw: dict[str, str], dlq: str | None, kms: bool) -> dict[str, Any]:
    """SQS API attributes (strings, as ``queues create`` sets them) as CloudFormation
    properties; the redrive target becomes the DLQ's ``Fn::GetAtt``, and with ``kms`` the
    stack's key replaces SSE-SQS."""
    props: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "SqsManagedSseEnabled" and kms:
            props["KmsMasterKeyId"] = {"Ref": "StackKey"}
        elif key == "RedrivePolicy":
            policy = orjson.loads(value)
            policy["deadLetterTargetArn"] = {"Fn::GetAtt": [dlq, "Arn"]}
            props[key] = policy
        elif value in ("true", "false"):
            props[key] = value == "true"
        else:
            props[key] = int(value)
    return props


def _queue(name: str, props: dict[str, Any]) -> dict[str, Any]:
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name, **props}}
    if "KmsMasterKeyId" in props:
        return queue
    # checkov 3.3 reads only KmsMasterKeyId: SSE-SQS encrypts too, with SQS's own key.
    return hardening.skip(
        queue, ("CKV_AWS_27", "SSE-SQS (SqsManagedSseEnabled); " + hardening.KMS_SKIP)
    )


def queues(pool: PoolConfig, kms: bool = False) -> dict[str, dict[str, Any]]:
    """Every queue of the pool, by logical ID (the same attributes ``queues create`` sets)."""
    placeholder = "dlq-arn"
    resources: dict[str, dict[str, Any]] = {}
    for k in range(pool.shards):
        dlq = f"Shard{k}Dlq"
        resources[dlq] = _queue(pool.dlq_name(k), _attributes(dlq_attributes(pool), None, kms))
        resources[f"Shard{k}Queue"] = _queue(
            pool.queue_name(k), _attributes(queue_attributes(pool, placeholder), dlq, kms)
        )
    standard = []
    if pool.events:
        standard.append(("Events", pool.events_name(), pool.events_dlq_name()))
    if pool.ses_feedback:
        standard.append(("SesEvents", pool.ses_events_name(), pool.ses_events_dlq_name()))
    for logical, name, dlq_name in standard:
        resources[f"{logical}Dlq"] = _queue(
            dlq_name, _attributes(events_attributes(pool, None), None, kms)
        )
        resources[f"{logical}Queue"] = _queue(
            name, _attributes(events_attributes(pool, placeholder), f"{logical}Dlq", kms)
        )
    return resources


def _table(name: str, kms: bool) -> dict[str, Any]:
    sse: dict[str, Any] = {"SSEEnabled": True}
    if kms:
        sse |= {"SSEType": "KMS", "KMSMasterKeyId": {"Ref": "StackKey"}}
    table = {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": state_table.KEY_SCHEMA,
            "AttributeDefinitions": state_table.ATTRIBUTE_DEFINITIONS,
            "TimeToLiveSpecification": {
                "Enabled": True,
                "AttributeName": state_table.TTL_ATTRIBUTE,
            },
            "SSESpecification": sse,
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "ResourcePolicy": hardening.table_policy(),
        },
    }
    return table if kms else hardening.skip(table, ("CKV_AWS_119", hardening.KMS_SKIP))


def _bucket(blobs: BlobConfig, kms: bool) -> dict[str, Any]:
    by_default: dict[str, Any] = {"SSEAlgorithm": "AES256"}
    if kms:
        by_default = {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": ["StackKey", "Arn"]},
        }
    bucket = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": by_default, "BucketKeyEnabled": kms}
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "LifecycleConfiguration": {"Rules": [_lifecycle(blobs)]},
            "LoggingConfiguration": {
                "DestinationBucketName": {"Ref": "LogBucket"},
                "LogFilePrefix": "s3/",
            },
        },
    }
    return hardening.skip(
        bucket,
        (
            "CKV_AWS_21",
            "bodies are transient (deleted with their message, expired after "
            "MAILPOOL_S3_EXPIRE_DAYS): versions would keep every deleted email",
        ),
    )


def _lifecycle(blobs: BlobConfig) -> dict[str, Any]:
    """``pool.blobs``' lifecycle rule in CloudFormation's spelling."""
    rule = lifecycle_rule(blobs)
    return {
        "Id": rule["ID"],
        "Prefix": rule["Filter"]["Prefix"],
        "Status": rule["Status"],
        "ExpirationInDays": rule["Expiration"]["Days"],
    }


def _arns(config: DeployConfig) -> dict[str, list[Any]]:
    """The ARNs of each resource kind ``mailpool.iam`` names."""
    pool = config.pool

    def queue_arns(logical: list[str]) -> list[Any]:
        return [{"Fn::GetAtt": [name, "Arn"]} for name in logical]

    arns: dict[str, list[Any]] = {
        "shard": queue_arns([f"Shard{k}Queue" for k in range(pool.shards)]),
        "shard-dlq": queue_arns([f"Shard{k}Dlq" for k in range(pool.shards)]),
        "table": [{"Fn::GetAtt": ["StateTable", "Arn"]}],
        "bucket": [{"Fn::GetAtt": ["BodyBucket", "Arn"]}],
        "objects": [{"Fn::Sub": f"${{BodyBucket.Arn}}/{config.blobs.prefix}*"}],
        "identity": [
            {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"},
            {
                "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:"
                "configuration-set/*"
            },
        ]
        if "ses" in config.providers
        else [],
    }
    arns["secret"] = [{"Ref": "StateSecret"}]
    if pool.events:
        arns["events"] = queue_arns(["EventsQueue"])
        arns["events-dlq"] = queue_arns(["EventsDlq"])
    if pool.ses_feedback:
        arns["ses-events"] = queue_arns(["SesEventsQueue"])
        arns["ses-events-dlq"] = queue_arns(["SesEventsDlq"])
    return arns


def roles(config: DeployConfig) -> tuple[str, ...]:
    """The process kinds with a task role: the sender's is the function's with Lambda."""
    return tuple(r for r in ROLES if config.worker == "ecs" or r != "sender")


def _role(role: str, config: DeployConfig) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"mailpool {role}: exactly the calls its process makes",
            "AssumeRolePolicyDocument": ecs.TASKS_ASSUME,
            "Policies": [
                {
                    "PolicyName": f"mailpool-{role}",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": iam.statements(role, _arns(config))
                        + hardening.kms_use(config.kms),
                    },
                }
            ],
        },
    }


def _alarm(description: str, metric: str, queue: str, threshold: int) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": "AWS/SQS",
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 3,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    }


def alarms(pool: PoolConfig) -> dict[str, dict[str, Any]]:
    """Per shard: the oldest message's age (past 5 minutes; with streams, a minute on the
    first stream's shards and an hour on the others'), and its DLQ's depth; the events
    DLQs' depth."""
    resources: dict[str, dict[str, Any]] = {}
    for k in range(pool.shards):
        stream, _ = pool.stream_at(k)
        age = ecs.SCALE_OUT_FAST_AGE_S
        if pool.streams:
            age = 60 if stream.name == pool.all_streams[0].name else 3600
        resources[f"Shard{k}AgeAlarm"] = _alarm(
            f"shard {k} ({stream.name}): the oldest message has waited over {age} s",
            "ApproximateAgeOfOldestMessage",
            f"Shard{k}Queue",
            age,
        )
        resources[f"Shard{k}DlqAlarm"] = _alarm(
            f"shard {k}: messages were dead-lettered",
            "ApproximateNumberOfMessagesVisible",
            f"Shard{k}Dlq",
            0,
        )
    for logical, present in (("Events", pool.events), ("SesEvents", pool.ses_feedback)):
        if present:
            resources[f"{logical}DlqAlarm"] = _alarm(
                f"{logical}: messages were dead-lettered",
                "ApproximateNumberOfMessagesVisible",
                f"{logical}Dlq",
                0,
            )
    return resources


def environment(config: DeployConfig) -> dict[str, Any]:
    """What a mailpool process needs to use the stack's resources, as name → value (strings,
    or ``Fn::Sub`` strings naming the stack's resources)."""
    pool = config.pool
    env: dict[str, Any] = {
        "AWS_REGION": "${AWS::Region}",
        "MAILPOOL_QUEUE_PREFIX": pool.prefix,
        "MAILPOOL_SHARDS": str(pool.shards),
        "MAILPOOL_MAX_MESSAGE_BYTES": str(pool.max_message_bytes),
        "MAILPOOL_VISIBILITY_TIMEOUT": str(pool.visibility_timeout_s),
        "MAILPOOL_MAX_RECEIVE_COUNT": str(pool.max_receive_count),
        "MAILPOOL_EVENTS": "on" if pool.events else "off",
        "MAILPOOL_SES_FEEDBACK": "on" if pool.ses_feedback else "off",
        "MAILPOOL_STATE": "on",
        "MAILPOOL_STATE_TABLE": "${StateTable}",
        "MAILPOOL_S3_BUCKET": "${BodyBucket}",
        "MAILPOOL_S3_PREFIX": config.blobs.prefix,
        "MAILPOOL_S3_EXPIRE_DAYS": str(config.blobs.expire_days),
        "MAILPOOL_PROVIDERS": ",".join(config.providers),
    }
    if not pool.fifo:
        env["MAILPOOL_QUEUE_TYPE"] = pool.queue_type
    return env


def _outputs(config: DeployConfig) -> dict[str, Any]:
    pool = config.pool
    outputs: dict[str, Any] = {}
    for k in range(pool.shards):
        outputs[f"Shard{k}QueueUrl"] = {"Value": {"Ref": f"Shard{k}Queue"}}
        outputs[f"Shard{k}DlqUrl"] = {"Value": {"Ref": f"Shard{k}Dlq"}}
    for logical, present in (("Events", pool.events), ("SesEvents", pool.ses_feedback)):
        if present:
            outputs[f"{logical}QueueUrl"] = {"Value": {"Ref": f"{logical}Queue"}}
            outputs[f"{logical}DlqUrl"] = {"Value": {"Ref": f"{logical}Dlq"}}
    outputs["StateTableName"] = {"Value": {"Ref": "StateTable"}}
    outputs["BodyBucketName"] = {"Value": {"Ref": "BodyBucket"}}
    outputs["StateSecretName"] = {
        "Description": "MAILPOOL_STATE_SECRET: aws secretsmanager get-secret-value --secret-id",
        "Value": {"Fn::Sub": hardening.SECRET_NAMES["StateSecret"]},
    }
    for role in roles(config):
        outputs[f"{role.capitalize()}RoleArn"] = {
            "Value": {"Fn::GetAtt": [f"{role.capitalize()}Role", "Arn"]}
        }
    if config.worker == "lambda":
        outputs["SenderFunctionRoleArn"] = {"Value": {"Fn::GetAtt": ["SenderFunctionRole", "Arn"]}}
    pairs = " ".join(f"{name}={value}" for name, value in environment(config).items())
    outputs["Environment"] = {
        "Description": "KEY=value pairs (space-separated) a mailpool process needs",
        "Value": {"Fn::Sub": pairs},
    }
    return outputs


def deployed(config: DeployConfig) -> DeployConfig:
    """``config`` as deployed: with the Lambda worker, queues hidden for 6 function timeouts."""
    if config.worker != "lambda":
        return config
    visibility = max(
        config.pool.visibility_timeout_s, functions.visibility_for(config.lambda_worker)
    )
    return dataclasses.replace(
        config, pool=dataclasses.replace(config.pool, visibility_timeout_s=visibility)
    )


def _worker(config: DeployConfig) -> dict[str, dict[str, Any]]:
    """The Lambda worker's resources (none with ECS senders)."""
    if config.worker != "lambda":
        return {}
    statements = iam.statements("lambda", _arns(config)) + hardening.kms_use(config.kms)
    return functions.resources(
        config.pool, config.lambda_worker, environment(config), statements, config.kms
    )


def template(config: DeployConfig) -> dict[str, Any]:
    """The CloudFormation template (a JSON-able dict) of ``config``'s deployment."""
    config = deployed(config)
    pool = config.pool
    queue_resources = queues(pool, config.kms)
    resources: dict[str, Any] = {
        **({"StackKey": hardening.kms_key()} if config.kms else {}),
        **queue_resources,
        **hardening.queue_policies(
            [name for name in queue_resources if name.endswith(("Queue", "Dlq"))],
            ses_events=pool.ses_feedback,
        ),
        "StateTable": _table(f"{pool.prefix}-state", config.kms),
        "BodyBucket": _bucket(config.blobs, config.kms),
        "BodyBucketPolicy": hardening.bucket_policy("BodyBucket"),
        **hardening.log_bucket(),
        **hardening.secrets(config.kms),
        **{f"{role.capitalize()}Role": _role(role, config) for role in roles(config)},
        **alarms(pool),
        **_worker(config),
    }
    conditions: dict[str, Any] = {
        "Services": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ImageUri"}, ""]}]},
        "Webhooks": {
            "Fn::And": [
                {"Condition": "Services"},
                {"Fn::Not": [{"Fn::Equals": [{"Ref": "WebhookUrl"}, ""]}]},
            ]
        },
        "LegacyElbRegion": hardening.legacy_elb_region(),
    }
    if config.worker == "lambda":
        conditions["LambdaWorker"] = {"Fn::Not": [{"Fn::Equals": [{"Ref": "LambdaCodeKey"}, ""]}]}
    worker = ", the Lambda worker" if config.worker == "lambda" else ""
    doc: dict[str, Any] = {
        "AWSTemplateFormatVersion": "2010-09-09",
        # The ECS part's network parameters default to empty (no ECS without an ImageUri):
        # cfn-lint would check those empty defaults as VPC and subnet IDs.
        "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["W1030"]}}},
        "Description": f"mailpool {pool.prefix}: {pool.shards} FIFO shards, state, bodies, "
        f"roles, alarms{worker} (and with ImageUri, its processes on ECS Fargate)",
        "Parameters": parameters(config.scheme, config.certificate_arn, config.worker),
        "Mappings": {"ElbLogAccounts": hardening.elb_mapping()},
        "Conditions": conditions,
        "Rules": RULES,
        "Resources": {**resources, **services(config)},
        "Outputs": _outputs(config),
    }
    return doc


def services(config: DeployConfig) -> dict[str, dict[str, Any]]:
    """The ECS Fargate option (``mailpool.ecs``), made only with an ``ImageUri``."""
    made = ecs.services(
        config.pool,
        environment(config),
        config.requests_per_intake,
        scheme=config.scheme,
        kms=config.kms,
    )
    # The webhooks task needs an endpoint to deliver to (WebhookUrl): without one, none.
    # With the Lambda worker, no sender task, service or scaling.
    return {
        name: {**resource, "Condition": "Webhooks" if name.startswith("Webhooks") else "Services"}
        for name, resource in made.items()
        if config.worker == "ecs" or not name.startswith("Sender")
    }


def template_yaml(doc: dict[str, Any]) -> str:
    """A template (``template(config)``) as YAML, with a header saying how it was made."""
    header = (
        "# mailpool's AWS footprint, written by `mailpool deploy template`: regenerate it\n"
        "# rather than editing it (tests/deploy holds deploy/aws/ to the generator).\n"
    )
    # A copy of fresh objects: a part used twice would otherwise be written as a YAML alias,
    # which CloudFormation refuses.
    fresh = orjson.loads(orjson.dumps(doc))
    body: str = yaml.safe_dump(fresh, sort_keys=False, width=100)
    return header + body
