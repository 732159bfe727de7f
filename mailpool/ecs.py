"""The ECS Fargate part of the deployment template: mailpool's processes and their scaling.

Intake runs behind an Application Load Balancer and scales on requests per target; senders
scale in steps on the age of the oldest message across shards (CloudWatch metric math over
each shard's ``ApproximateAgeOfOldestMessage``), the signal that says emails wait; one
webhooks process dispatches events. Every task runs with its own role from
``mailpool.cloudformation`` and the stack's ``Environment``; its secrets come from Secrets
Manager as ECS ``Secrets``, read by the execution role (allowed exactly those). The load
balancer speaks only HTTPS (TLS 1.2 at least, 1.3 preferred), drops invalid headers, logs
every request, and is internal unless the template is rendered internet-facing.
"""

from typing import Any

from mailpool import hardening
from pool.config import PoolConfig

#: Senders scale out when the oldest message across shards is this old (seconds), faster
#: past the second age, and in when it is younger than the third.
SCALE_OUT_AGE_S = 60
SCALE_OUT_FAST_AGE_S = 300
SCALE_IN_AGE_S = 10
#: With streams, the later streams' (bulk) ages count for this much less: an hour of bulk
#: backlog scales like a minute of transactional.
LATER_STREAMS_DISCOUNT = 60
INTAKE_PORT = 8080
_TASKS = {"intake": (512, 1024), "sender": (1024, 2048), "webhooks": (256, 512)}


#: The trust policy of a role ECS tasks take (the task roles and the execution role).
TASKS_ASSUME = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        }
    ],
}
#: The load balancer's TLS policy: TLS 1.3 and 1.2 only, forward secrecy.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
#: Each task's secrets: environment variable → the stack's secret (logical ID).
SECRETS = {
    "intake": {"MAILPOOL_STATE_SECRET": "StateSecret", "MAILPOOL_API_KEY_DIGESTS": "ApiKeysSecret"},
    "sender": {"MAILPOOL_STATE_SECRET": "StateSecret"},
    "webhooks": {
        "MAILPOOL_STATE_SECRET": "StateSecret",
        "MAILPOOL_WEBHOOK_SECRET": "WebhookSigningSecret",
    },
}


def _container(role: str, env: dict[str, Any]) -> dict[str, Any]:
    environment = [{"Name": k, "Value": {"Fn::Sub": v} if "${" in v else v} for k, v in env.items()]
    if role == "intake":
        environment += [
            {"Name": "MAILPOOL_HTTP_HOST", "Value": "0.0.0.0"},
            {"Name": "MAILPOOL_HTTP_PORT", "Value": str(INTAKE_PORT)},
        ]
    if role == "webhooks":
        environment.append({"Name": "MAILPOOL_WEBHOOK_URL", "Value": {"Ref": "WebhookUrl"}})
    container: dict[str, Any] = {
        "Name": role,
        "Image": {"Ref": "ImageUri"},
        "Command": [role],
        "Essential": True,
        "Environment": environment,
        "Secrets": [
            {"Name": name, "ValueFrom": {"Ref": secret}} for name, secret in SECRETS[role].items()
        ],
        "LogConfiguration": {
            "LogDriver": "awslogs",
            "Options": {
                "awslogs-group": {"Ref": "LogGroup"},
                "awslogs-region": {"Ref": "AWS::Region"},
                "awslogs-stream-prefix": role,
            },
        },
    }
    if role == "intake":
        container["PortMappings"] = [{"ContainerPort": INTAKE_PORT, "Protocol": "tcp"}]
    return container


def _task(role: str, env: dict[str, Any]) -> dict[str, Any]:
    cpu, memory = _TASKS[role]
    return {
        "Type": "AWS::ECS::TaskDefinition",
        "Properties": {
            "Family": {"Fn::Sub": f"${{AWS::StackName}}-{role}"},
            "Cpu": str(cpu),
            "Memory": str(memory),
            "NetworkMode": "awsvpc",
            "RequiresCompatibilities": ["FARGATE"],
            "ExecutionRoleArn": {"Fn::GetAtt": ["ExecutionRole", "Arn"]},
            "TaskRoleArn": {"Fn::GetAtt": [f"{role.capitalize()}Role", "Arn"]},
            "ContainerDefinitions": [_container(role, env)],
        },
    }


def _service(role: str, desired: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "Cluster": {"Ref": "Cluster"},
        "LaunchType": "FARGATE",
        "DesiredCount": desired,
        "TaskDefinition": {"Ref": f"{role.capitalize()}Task"},
        "NetworkConfiguration": {
            "AwsvpcConfiguration": {
                "Subnets": {"Ref": "SubnetIds"},
                "SecurityGroups": [{"Ref": "ServiceSecurityGroup"}],
                "AssignPublicIp": {"Ref": "AssignPublicIp"},
            }
        },
    }
    resource: dict[str, Any] = {"Type": "AWS::ECS::Service", "Properties": props}
    if role == "intake":
        props["LoadBalancers"] = [
            {
                "ContainerName": "intake",
                "ContainerPort": INTAKE_PORT,
                "TargetGroupArn": {"Ref": "IntakeTargetGroup"},
            }
        ]
        props["HealthCheckGracePeriodSeconds"] = 30
        resource["DependsOn"] = ["IntakeListenerRule"]  # the rule ties the targets to the LB
    return resource


def _scalable(role: str, low: str, high: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
        "Properties": {
            "ServiceNamespace": "ecs",
            "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": {"Fn::Sub": f"service/${{Cluster}}/${{{role.capitalize()}Service.Name}}"},
            "MinCapacity": {"Ref": low},
            "MaxCapacity": {"Ref": high},
        },
    }


def _oldest(pool: PoolConfig, name: str, policy: str, below: bool) -> dict[str, Any]:
    """An alarm on the oldest message's age across every shard (the maximum of each
    shard's ``ApproximateAgeOfOldestMessage``), acting on ``policy``."""
    metrics: list[dict[str, Any]] = [
        {
            "Id": f"m{k}",
            "ReturnData": False,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/SQS",
                    "MetricName": "ApproximateAgeOfOldestMessage",
                    "Dimensions": [{"Name": "QueueName", "Value": pool.queue_name(k)}],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for k in range(pool.shards)
    ]
    metrics.append(
        {
            "Id": "oldest",
            "Expression": age_expression(pool),
            "ReturnData": True,
            "Label": "oldest message across shards (s)",
        }
    )
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": f"{name}: the oldest message across shards "
            + (f"is younger than {SCALE_IN_AGE_S} s" if below else f"is over {SCALE_OUT_AGE_S} s"),
            "Metrics": metrics,
            "Threshold": SCALE_IN_AGE_S if below else SCALE_OUT_AGE_S,
            "ComparisonOperator": "LessThanThreshold" if below else "GreaterThanThreshold",
            "EvaluationPeriods": 5 if below else 1,
            "TreatMissingData": "notBreaching" if not below else "breaching",
            "AlarmActions": [{"Ref": policy}],
        },
    }


def age_expression(pool: PoolConfig) -> str:
    """The scaling signal: the oldest message across the first stream's shards; with
    streams, the later streams' ages, discounted (``LATER_STREAMS_DISCOUNT``), beside it,
    so transactional mail's age leads."""
    first, shards = pool.span(pool.all_streams[0].name)
    ids = ",".join(f"m{k}" for k in range(first, first + shards))
    later = ",".join(f"m{k}" for k in range(first + shards, pool.shards))
    if not later:
        return f"MAX([{ids}])"
    return f"MAX([MAX([{ids}]), MAX([{later}]) / {LATER_STREAMS_DISCOUNT}])"


def _steps(adjustments: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
        "Properties": {
            "PolicyName": {
                "Fn::Sub": "${AWS::StackName}-senders-"
                + ("out" if adjustments[0]["ScalingAdjustment"] > 0 else "in")
            },
            "PolicyType": "StepScaling",
            "ScalingTargetId": {"Ref": "SenderScalable"},
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "Cooldown": 60,
                "MetricAggregationType": "Maximum",
                "StepAdjustments": adjustments,
            },
        },
    }


_FORWARD = {"Type": "forward", "TargetGroupArn": {"Ref": "IntakeTargetGroup"}}
#: The paths the load balancer forwards: the API and the unsubscribe links. Everything else
#: (``/metrics``, ``/openapi.json``, the probes) stays inside the VPC: the listener answers
#: 404 for it without asking a task.
PUBLIC_PATHS = ("/v1/*", "/unsubscribe/*")
_NOT_FOUND = {
    "Type": "fixed-response",
    "FixedResponseConfig": {
        "StatusCode": "404",
        "ContentType": "application/json",
        "MessageBody": '{"error": {"code": "not_found", "message": "no such resource", '
        '"field": null}}',
    },
}


def _network(scheme: str) -> dict[str, dict[str, Any]]:
    """The load balancer (HTTPS only), its target group and the two security groups."""
    attributes = {
        "routing.http.drop_invalid_header_fields.enabled": "true",
        "access_logs.s3.enabled": "true",
        "access_logs.s3.bucket": {"Ref": "LogBucket"},
        "access_logs.s3.prefix": "alb",
    }
    return {
        "LoadBalancerSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "mailpool intake load balancer: HTTPS from the producers",
                "VpcId": {"Ref": "VpcId"},
                "SecurityGroupIngress": [
                    {
                        "Description": "HTTPS from the producers (ClientCidr)",
                        "IpProtocol": "tcp",
                        "FromPort": 443,
                        "ToPort": 443,
                        "CidrIp": {"Ref": "ClientCidr"},
                    }
                ],
            },
        },
        "ServiceSecurityGroup": {
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "mailpool tasks: the intake port from the load balancer only",
                "VpcId": {"Ref": "VpcId"},
                "SecurityGroupIngress": [
                    {
                        "Description": "intake's port, from the load balancer only",
                        "IpProtocol": "tcp",
                        "FromPort": INTAKE_PORT,
                        "ToPort": INTAKE_PORT,
                        "SourceSecurityGroupId": {"Ref": "LoadBalancerSecurityGroup"},
                    }
                ],
            },
        },
        "LoadBalancer": {
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "DependsOn": ["LogBucketPolicy"],
            "Properties": {
                "Type": "application",
                "Scheme": scheme,
                "Subnets": {"Ref": "SubnetIds"},
                "SecurityGroups": [{"Ref": "LoadBalancerSecurityGroup"}],
                "LoadBalancerAttributes": [{"Key": k, "Value": v} for k, v in attributes.items()],
            },
        },
        "IntakeTargetGroup": {
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "TargetType": "ip",
                "Protocol": "HTTP",
                "Port": INTAKE_PORT,
                "VpcId": {"Ref": "VpcId"},
                "HealthCheckPath": "/readyz",
            },
        },
        "IntakeListener": {
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": {"Ref": "LoadBalancer"},
                "Port": 443,
                "Protocol": "HTTPS",
                "SslPolicy": TLS_POLICY,
                "Certificates": [{"CertificateArn": {"Ref": "CertificateArn"}}],
                "DefaultActions": [_NOT_FOUND],
            },
        },
        "IntakeListenerRule": {
            "Type": "AWS::ElasticLoadBalancingV2::ListenerRule",
            "Properties": {
                "ListenerArn": {"Ref": "IntakeListener"},
                "Priority": 1,
                "Conditions": [
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": list(PUBLIC_PATHS)}}
                ],
                "Actions": [_FORWARD],
            },
        },
    }


def _execution_role(kms: bool) -> dict[str, Any]:
    """The role ECS starts tasks with: pull the image, write logs, and read exactly the
    secrets the tasks name (the webhook secret only where there is a webhooks task)."""
    secret_arns: list[Any] = [
        {"Ref": "StateSecret"},
        {"Ref": "ApiKeysSecret"},
        {"Fn::If": ["Webhooks", {"Ref": "WebhookSigningSecret"}, {"Ref": "AWS::NoValue"}]},
    ]
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": secret_arns}
    ]
    statements += [{**s, "Action": ["kms:Decrypt"]} for s in hardening.kms_use(kms)]
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": TASKS_ASSUME,
            "ManagedPolicyArns": [
                {
                    "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                    "service-role/AmazonECSTaskExecutionRolePolicy"
                }
            ],
            "Policies": [
                {
                    "PolicyName": "mailpool-task-secrets",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ],
        },
    }


def _log_group(kms: bool) -> dict[str, Any]:
    group: dict[str, Any] = {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 30}}
    if kms:
        group["Properties"]["KmsKeyId"] = {"Fn::GetAtt": ["StackKey", "Arn"]}
        return group
    return hardening.skip(group, ("CKV_AWS_158", hardening.KMS_SKIP))


def services(
    pool: PoolConfig, env: dict[str, Any], requests_per_intake: int, *, scheme: str, kms: bool
) -> dict[str, Any]:
    """The cluster, its tasks and services, the load balancer and the scaling, by logical ID."""
    fast = SCALE_OUT_FAST_AGE_S - SCALE_OUT_AGE_S
    resources: dict[str, Any] = {
        "Cluster": {
            "Type": "AWS::ECS::Cluster",
            "Properties": {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
        },
        "LogGroup": _log_group(kms),
        "ExecutionRole": _execution_role(kms),
        **_network(scheme),
        **{f"{r.capitalize()}Task": _task(r, env) for r in ("intake", "sender", "webhooks")},
        "IntakeService": _service("intake", {"Ref": "MinIntakes"}),
        "SenderService": _service("sender", {"Ref": "MinSenders"}),
        "WebhooksService": _service("webhooks", 1),
        "SenderScalable": _scalable("sender", "MinSenders", "MaxSenders"),
        "SenderScaleOut": _steps(
            [
                {
                    "MetricIntervalLowerBound": 0,
                    "MetricIntervalUpperBound": fast,
                    "ScalingAdjustment": 1,
                },
                {"MetricIntervalLowerBound": fast, "ScalingAdjustment": 3},
            ]
        ),
        "SenderScaleIn": _steps([{"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1}]),
        "SenderBacklogAlarm": _oldest(pool, "scale senders out", "SenderScaleOut", below=False),
        "SenderIdleAlarm": _oldest(pool, "scale senders in", "SenderScaleIn", below=True),
        "IntakeScalable": _scalable("intake", "MinIntakes", "MaxIntakes"),
        "IntakeScaling": {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": {
                "PolicyName": {"Fn::Sub": "${AWS::StackName}-intakes"},
                "PolicyType": "TargetTrackingScaling",
                "ScalingTargetId": {"Ref": "IntakeScalable"},
                "TargetTrackingScalingPolicyConfiguration": {
                    "TargetValue": requests_per_intake,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "ALBRequestCountPerTarget",
                        "ResourceLabel": {
                            "Fn::Sub": "${LoadBalancer.LoadBalancerFullName}/"
                            "${IntakeTargetGroup.TargetGroupFullName}"
                        },
                    },
                },
            },
        },
    }
    return resources
