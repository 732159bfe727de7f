"""The deployment template: generated, linted, least-privilege, and deployable on moto."""

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import uuid

import aiohttp
import pytest
import yaml
from aiobotocore.session import get_session

from intake.config import IntakeConfig
from intake.service import IntakeService
from mailpool import ecs, hardening, iam
from mailpool.cli import main
from mailpool.cloudformation import DeployConfig, _arns, template, template_yaml
from pool.blobs import BlobConfig, BlobStore
from pool.config import PoolConfig
from pool.provision import queue_attributes
from pool.streams import parse
from sender.config import SenderConfig
from sender.providers import make_provider
from sender.service import SenderService
from serverless.config import LambdaConfig
from state.config import StateConfig
from tests.support.waiting import until

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "aws" / "mailpool.yaml"
CFN_LINT = str(pathlib.Path(sys.executable).parent / "cfn-lint")
#: checkov lives in a virtual environment of its own (`make test` installs it).
CHECKOV = os.environ.get("MAILPOOL_CHECKOV")
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d"
#: Every template the command can render, by what it varies.
VARIANTS = {
    "default": DeployConfig(),
    "smtp-only": DeployConfig(pool=PoolConfig(ses_feedback=False), providers=("smtp",)),
    "internet-facing": DeployConfig(scheme="internet-facing", certificate_arn=CERTIFICATE),
    "kms": DeployConfig(kms=True),
    "no-events": DeployConfig(pool=PoolConfig(prefix="lean", shards=1, events=False)),
    "lambda": DeployConfig(worker="lambda"),
    "lambda-kms-smtp": DeployConfig(worker="lambda", kms=True, providers=("smtp",)),
    "lambda-standard": DeployConfig(worker="lambda", pool=PoolConfig(queue_type="standard")),
    "streams": DeployConfig(pool=PoolConfig(shards=3, streams=parse("transactional:1,bulk:2"))),
}


def test_the_committed_template_is_what_the_command_writes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):  # the defaults' template (the record of AWS calls goes on)
        if name.startswith("MAILPOOL_") and name != "MAILPOOL_AWS_RECORD":
            monkeypatch.delenv(name)
    written = tmp_path / "mailpool.yaml"
    assert main(["deploy", "template", "-o", str(written)]) == 0
    assert written.read_text() == COMMITTED.read_text(), (
        "deploy/aws/mailpool.yaml is stale: run `mailpool deploy template -o "
        "deploy/aws/mailpool.yaml`"
    )


def test_cfn_lint_passes_on_other_configurations(tmp_path: pathlib.Path) -> None:
    variants = {
        **VARIANTS,
        "eight-smtp": DeployConfig(pool=PoolConfig(shards=8, ses_feedback=False),
                                   providers=("smtp",)),
    }  # fmt: skip
    for name, config in variants.items():
        (tmp_path / f"{name}.yaml").write_text(template_yaml(template(config)))
    linted = subprocess.run(
        [CFN_LINT, *sorted(str(p) for p in tmp_path.glob("*.yaml"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_each_role_is_allowed_exactly_its_proven_actions_on_its_resources() -> None:
    config = DeployConfig(pool=PoolConfig(ses_feedback=True))
    resources = template(config)["Resources"]
    arns = _arns(config)
    for role in ("intake", "sender", "webhooks"):
        [policy] = resources[f"{role.capitalize()}Role"]["Properties"]["Policies"]
        granted = {
            (action, yaml.safe_dump(arn))
            for statement in policy["PolicyDocument"]["Statement"]
            for action in statement["Action"]
            for arn in statement["Resource"]
        }
        expected = {(action, yaml.safe_dump(arn)) for action, kind in iam.PERMISSIONS[role]
                    for arn in arns[kind]}  # fmt: skip
        assert granted == expected, role
    lambda_config = DeployConfig(worker="lambda", pool=PoolConfig(ses_feedback=True))
    [policy] = template(lambda_config)["Resources"]["SenderFunctionRole"]["Properties"]["Policies"]
    *granted_statements, logs = policy["PolicyDocument"]["Statement"]
    assert granted_statements == iam.statements("lambda", _arns(lambda_config))
    assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
    # No wildcard beyond SES identities and the body prefix.
    assert "*" not in yaml.safe_dump(resources["IntakeRole"]).replace("/*", "")


async def _stack(endpoint: str, body: str) -> dict[str, str]:
    """Create a stack on moto's CloudFormation; its outputs."""
    name = f"mp{uuid.uuid4().hex[:8]}"
    async with get_session().create_client(
        "cloudformation", region_name="us-east-1", endpoint_url=endpoint
    ) as cloudformation:
        await cloudformation.create_stack(StackName=name, TemplateBody=body,
                                          Capabilities=["CAPABILITY_IAM"])  # fmt: skip
        for _ in range(100):
            [stack] = (await cloudformation.describe_stacks(StackName=name))["Stacks"]
            if stack["StackStatus"] != "CREATE_IN_PROGRESS":
                break
            await asyncio.sleep(0.1)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


async def _ses_sent(endpoint: str) -> float:
    """Emails SES (moto) sent in the last 24 hours. Not moto's data.json: dumping every model
    races with the DynamoDB writes this test's processes make at the same time."""
    async with get_session().create_client(
        "ses", region_name="us-east-1", endpoint_url=endpoint
    ) as ses:
        return float((await ses.get_send_quota())["SentLast24Hours"])


async def _state_secret(endpoint: str, name: str) -> str:
    """The state secret, read the way docs/deployment.md says. moto's CloudFormation does not make
    Secrets Manager secrets, so it is first put where the stack puts it, generated as the
    template asks (64 letters and digits)."""
    async with get_session().create_client(
        "secretsmanager", region_name="us-east-1", endpoint_url=endpoint
    ) as secrets:
        spec = template(DeployConfig())["Resources"]["StateSecret"]["Properties"]
        generated = await secrets.get_random_password(**spec["GenerateSecretString"])
        await secrets.create_secret(Name=name, SecretString=generated["RandomPassword"])
        return str((await secrets.get_secret_value(SecretId=name))["SecretString"])


# moto's CloudFormation does not know alarms, queue and bucket policies or Secrets Manager
# secrets: it warns and leaves them out (see docs/deployment.md); the template tests check them.
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.+CloudWatch.+Alarm:UserWarning")
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.+S3.+BucketPolicy:UserWarning")
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.+SQS.+QueuePolicy:UserWarning")
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.+SecretsManager.+Secret:UserWarning")
async def test_a_stack_on_moto_runs_mailpool_configured_only_from_its_outputs(
    sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DeployConfig(pool=PoolConfig(prefix=f"cf{uuid.uuid4().hex[:6]}", shards=2,
                                          ses_feedback=True))  # fmt: skip
    outputs = await _stack(sqs_endpoint, template_yaml(template(config)))
    env = dict(pair.split("=", 1) for pair in outputs["Environment"].split(" "))
    assert env["MAILPOOL_STATE_TABLE"] == outputs["StateTableName"]
    assert env["MAILPOOL_S3_BUCKET"] == outputs["BodyBucketName"]
    secret = await _state_secret(sqs_endpoint, outputs["StateSecretName"])
    for name, value in {
        **env,
        "AWS_ENDPOINT_URL": sqs_endpoint,
        "MAILPOOL_STATE_SECRET": secret,
    }.items():
        monkeypatch.setenv(name, value)  # fmt: skip
    async with get_session().create_client(
        "sesv2", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as ses:
        await ses.create_email_identity(EmailIdentity="shop.example.test")
    # The queues are the ones `mailpool queues create` would make.
    pool = PoolConfig.from_env()
    async with get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as sqs:
        shard = outputs["Shard1QueueUrl"]
        attrs = await sqs.get_queue_attributes(QueueUrl=shard, AttributeNames=["All"])
        dlq = (await sqs.get_queue_attributes(QueueUrl=outputs["Shard1DlqUrl"],
                                              AttributeNames=["QueueArn"]))  # fmt: skip
    attrs, dlq = attrs["Attributes"], dlq["Attributes"]
    wanted = queue_attributes(pool, dlq["QueueArn"])
    for key in ("FifoQueue", "VisibilityTimeout", "MessageRetentionPeriod", "MaximumMessageSize"):
        assert attrs[key] == wanted[key], key
    assert yaml.safe_load(attrs["RedrivePolicy"]) == yaml.safe_load(wanted["RedrivePolicy"])
    state = StateConfig.from_env(prefix=pool.prefix)
    blobs = BlobConfig.from_env()
    email = {"from": "shop@shop.example.test", "to": "bob@example.test", "subject": "Hi",
             "text": "from a stack's outputs"}  # fmt: skip
    async with (
        IntakeService(pool, IntakeConfig(port=0), blobs=BlobStore(blobs), state=state) as intake,
        SenderService(pool, SenderConfig(wait_time_s=1, metrics_port=0), make_provider(),
                      blobs=BlobStore(blobs), state=state),
        aiohttp.ClientSession() as http,
    ):  # fmt: skip
        before = await _ses_sent(sqs_endpoint)
        async with http.post(f"{intake.url}/v1/emails", json=email) as response:
            assert response.status == 202, await response.text()
            email_id = (await response.json())["id"]

        async def sent() -> bool:  # the sender recorded SES's acceptance in the state table
            async with http.get(f"{intake.url}/v1/emails/{email_id}") as response:
                return (await response.json()).get("state") == "sent"

        await until(sent, 20)
        # moto counts each recipient twice (the request's and the message's To): more is enough.
        assert await _ses_sent(sqs_endpoint) > before


def test_senders_scale_on_the_oldest_message_across_every_shard() -> None:
    resources = template(DeployConfig(pool=PoolConfig(shards=3)))["Resources"]
    backlog = resources["SenderBacklogAlarm"]["Properties"]
    [expression] = [m for m in backlog["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "MAX([m0,m1,m2])"
    shards = [m["MetricStat"]["Metric"] for m in backlog["Metrics"] if "MetricStat" in m]
    assert {m["MetricName"] for m in shards} == {"ApproximateAgeOfOldestMessage"}
    assert [m["Dimensions"][0]["Value"] for m in shards] == [
        "mailpool-0.fifo", "mailpool-1.fifo", "mailpool-2.fifo"
    ]  # fmt: skip
    assert backlog["AlarmActions"] == [{"Ref": "SenderScaleOut"}]
    out = resources["SenderScaleOut"]["Properties"]
    assert out["PolicyType"] == "StepScaling"
    assert [s["ScalingAdjustment"] for s in out["StepScalingPolicyConfiguration"]
            ["StepAdjustments"]] == [1, 3]  # fmt: skip
    intake = resources["IntakeScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert intake["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "ALBRequestCountPerTarget"
    )
    # None of it exists without an image, and no webhooks task without an endpoint.
    assert resources["SenderService"]["Condition"] == "Services"
    assert resources["WebhooksService"]["Condition"] == "Webhooks"
    assert "Condition" not in resources["Shard0Queue"]


def _skips(doc: dict[str, object]) -> dict[str, set[str]]:
    """checkov check → the reasons a template gives for skipping it."""
    found: dict[str, set[str]] = {}
    for resource in doc["Resources"].values():  # type: ignore[attr-defined]
        for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found.setdefault(entry["id"], set()).add(entry["comment"])
    return found


@pytest.mark.skipif(not CHECKOV, reason="checkov not installed (make test installs it)")
def test_checkov_finds_nothing_on_any_template_and_every_skip_says_why(
    tmp_path: pathlib.Path,
) -> None:
    assert CHECKOV is not None
    for name, config in VARIANTS.items():
        (tmp_path / f"{name}.yaml").write_text(template_yaml(template(config)))
    scanned = subprocess.run(
        [CHECKOV, "-d", str(tmp_path), "--framework", "cloudformation", "--quiet", "-o", "json"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    report = json.loads(scanned.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 0
    failed = [] if summary["failed"] == 0 else [
        (c["check_id"], c["resource"], c["file_path"])
        for r in (report if isinstance(report, list) else [report])
        for c in r["results"]["failed_checks"]
    ]  # fmt: skip
    assert not failed, failed
    # Every skip carries its reason, and docs/security.md lists each skipped check.
    readme = (ROOT / "docs" / "security.md").read_text()
    for config in VARIANTS.values():
        for check, reasons in _skips(template(config)).items():
            assert all(len(reason) > 20 for reason in reasons), check
            assert f"`{check}`" in readme, f"docs/security.md does not list {check}"


def test_an_internet_facing_load_balancer_is_not_rendered_without_a_certificate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["deploy", "template", "--scheme", "internet-facing", "-o", os.devnull]) == 2
    assert "--certificate-arn" in capsys.readouterr().err
    doc = template(VARIANTS["internet-facing"])
    assert doc["Resources"]["LoadBalancer"]["Properties"]["Scheme"] == "internet-facing"
    assert doc["Parameters"]["CertificateArn"]["Default"] == CERTIFICATE
    assert template(DeployConfig())["Resources"]["LoadBalancer"]["Properties"]["Scheme"] == (
        "internal"
    )


def test_the_edge_is_https_only_with_a_modern_tls_policy() -> None:
    resources = template(DeployConfig())["Resources"]
    listeners = [r for r in resources.values()
                 if r["Type"] == "AWS::ElasticLoadBalancingV2::Listener"]  # fmt: skip
    assert [(lr["Properties"]["Port"], lr["Properties"]["Protocol"]) for lr in listeners] == [
        (443, "HTTPS")
    ]
    assert listeners[0]["Properties"]["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    # Only the API and the unsubscribe links reach a task from outside; /metrics and the
    # rest get the listener's own 404.
    [default] = listeners[0]["Properties"]["DefaultActions"]
    assert default["Type"] == "fixed-response"
    assert default["FixedResponseConfig"]["StatusCode"] == "404"
    rules = [r["Properties"] for r in resources.values()
             if r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule"]  # fmt: skip
    assert [c["PathPatternConfig"]["Values"] for r in rules for c in r["Conditions"]] == [
        ["/v1/*", "/unsubscribe/*"]
    ]
    assert [a["Type"] for r in rules for a in r["Actions"]] == ["forward"]
    ingress = resources["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [(rule["FromPort"], rule["CidrIp"]) for rule in ingress] == [
        (443, {"Ref": "ClientCidr"})
    ]
    attributes = {
        a["Key"]: a["Value"]
        for a in resources["LoadBalancer"]["Properties"]["LoadBalancerAttributes"]
    }
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"


SECRET_VARIABLES = {
    "MAILPOOL_STATE_SECRET",
    "MAILPOOL_API_KEYS",
    "MAILPOOL_API_KEY_DIGESTS",
    "MAILPOOL_WEBHOOK_SECRET",
}


def test_secrets_reach_the_tasks_only_as_ecs_secrets_read_by_exactly_their_role() -> None:
    for config in (DeployConfig(), DeployConfig(kms=True)):
        resources = template(config)["Resources"]
        named: set[str] = set()
        for role in ("intake", "sender", "webhooks"):
            [container] = resources[f"{role.capitalize()}Task"]["Properties"][
                "ContainerDefinitions"
            ]
            names = {e["Name"] for e in container["Environment"]}
            assert not names & SECRET_VARIABLES, role
            named |= {s["ValueFrom"]["Ref"] for s in container["Secrets"]}
            assert {s["Name"] for s in container["Secrets"]} == set(ecs.SECRETS[role])
        [policy] = resources["ExecutionRole"]["Properties"]["Policies"]
        statements = policy["PolicyDocument"]["Statement"]
        reads = [s for s in statements if s["Action"] == ["secretsmanager:GetSecretValue"]]
        [read] = reads
        readable = {r["Ref"] if "Ref" in r else r["Fn::If"][1]["Ref"] for r in read["Resource"]}
        assert readable == named == {"StateSecret", "ApiKeysSecret", "WebhookSigningSecret"}
        others = [s for s in statements if s is not read]
        assert others == ([{"Effect": "Allow", "Action": ["kms:Decrypt"],
                            "Resource": [{"Fn::GetAtt": ["StackKey", "Arn"]}]}]
                          if config.kms else [])  # fmt: skip
        assert resources["StateSecret"]["Properties"]["GenerateSecretString"]["PasswordLength"]


def test_every_queue_bucket_and_the_table_refuse_requests_without_tls() -> None:
    resources = template(DeployConfig(pool=PoolConfig(ses_feedback=True)))["Resources"]
    queues = {n for n, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    covered = {
        q["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy"
        and _denies_plain_http(r["Properties"]["PolicyDocument"])
        for q in r["Properties"]["Queues"]
    }
    assert covered == queues
    buckets = {n for n, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
    assert buckets == {"BodyBucket", "LogBucket"}
    for bucket in buckets:
        policy = resources[f"{bucket}Policy"]["Properties"]
        assert policy["Bucket"] == {"Ref": bucket}
        assert _denies_plain_http(policy["PolicyDocument"])
    assert _denies_plain_http(resources["StateTable"]["Properties"]["ResourcePolicy"]
                              ["PolicyDocument"])  # fmt: skip


def _denies_plain_http(policy: dict[str, object]) -> bool:
    return any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Statement"]  # type: ignore[attr-defined]
    )


def test_with_a_kms_key_everything_at_rest_uses_it_and_the_roles_may() -> None:
    resources = template(DeployConfig(kms=True, pool=PoolConfig(ses_feedback=True)))["Resources"]
    key = resources["StackKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue":
            assert props["KmsMasterKeyId"] == {"Ref": "StackKey"}, name
            assert "SqsManagedSseEnabled" not in props, name
        if resource["Type"] == "AWS::SecretsManager::Secret":
            assert props["KmsKeyId"] == {"Ref": "StackKey"}, name
    assert resources["StateTable"]["Properties"]["SSESpecification"]["SSEType"] == "KMS"
    [rule] = resources["BodyBucket"]["Properties"]["BucketEncryption"][
        "ServerSideEncryptionConfiguration"
    ]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert resources["LogGroup"]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["StackKey", "Arn"]}
    for role in ("intake", "sender", "webhooks"):
        [policy] = resources[f"{role.capitalize()}Role"]["Properties"]["Policies"]
        assert hardening.kms_use(True)[0] in policy["PolicyDocument"]["Statement"], role
    # Without the key, no statement names one.
    plain = yaml.safe_dump(template(DeployConfig())["Resources"])
    assert "StackKey" not in plain
    assert "kms:" not in plain


def test_the_lambda_worker_has_a_mapping_per_shard_answering_partial_batches() -> None:
    config = DeployConfig(worker="lambda", pool=PoolConfig(shards=3))
    doc = template(config)
    resources = doc["Resources"]
    mappings = [resources[f"Shard{k}EventSource"]["Properties"] for k in range(3)]
    assert [m["EventSourceArn"] for m in mappings] == [
        {"Fn::GetAtt": [f"Shard{k}Queue", "Arn"]} for k in range(3)
    ]
    for mapping in mappings:
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == 10
        assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2  # Lambda's floor
    function = resources["SenderFunction"]["Properties"]
    assert (function["Handler"], function["Runtime"]) == ("serverless.handler.handler",
                                                          "python3.11")  # fmt: skip
    # Queues hide a message for six function timeouts, as Lambda asks.
    visibility = resources["Shard0Queue"]["Properties"]["VisibilityTimeout"]
    assert int(visibility) == 6 * function["Timeout"]
    variables = function["Environment"]["Variables"]
    assert not set(variables) & SECRET_VARIABLES
    assert variables["MAILPOOL_STATE_SECRET_ARN"] == {"Fn::Sub": "${StateSecret}"}
    assert variables["MAILPOOL_VISIBILITY_TIMEOUT"] == str(int(visibility))
    assert resources["SenderFunctionLogs"]["Properties"]["RetentionInDays"] == 30
    alarms = {resources[n]["Properties"]["MetricName"] for n in resources if n.startswith(
        "SenderFunction") and n.endswith("Alarm")}  # fmt: skip
    assert alarms == {"Errors", "Throttles"}
    # The dashboard reads the metrics lines the handler prints (namespace mailpool).
    body = json.loads(
        resources["SenderFunctionDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    )
    fed = {m[1] for w in body["widgets"] for m in w["properties"]["metrics"] if m[0] == "mailpool"}
    assert {"emails_delivered", "emails_retried", "accepted_to_sent"} <= fed
    # No sender task, service or scaling on ECS; nothing of it without the code's key.
    assert not [n for n in resources if n.startswith("Sender") and not n.startswith(
        "SenderFunction")]  # fmt: skip
    assert resources["SenderFunction"]["Condition"] == "LambdaWorker"
    assert "LambdaCodeKey" in doc["Parameters"]


def test_with_streams_senders_scale_on_transactional_age_first_and_alarms_differ() -> None:
    lanes = parse("transactional:2:8,bulk:2:1:0.75")
    resources = template(DeployConfig(pool=PoolConfig(shards=4, streams=lanes)))["Resources"]
    backlog = resources["SenderBacklogAlarm"]["Properties"]
    [expression] = [m["Expression"] for m in backlog["Metrics"] if "Expression" in m]
    assert expression == "MAX([MAX([m0,m1]), MAX([m2,m3]) / 60])"
    names = [m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
             for m in backlog["Metrics"] if "MetricStat" in m]  # fmt: skip
    assert names == ["mailpool-0.fifo", "mailpool-1.fifo", "mailpool-bulk-0.fifo",
                     "mailpool-bulk-1.fifo"]  # fmt: skip
    thresholds = [resources[f"Shard{k}AgeAlarm"]["Properties"]["Threshold"] for k in range(4)]
    assert thresholds == [60, 60, 3600, 3600]  # transactional pages in a minute, bulk an hour


def test_with_streams_the_lambda_workers_mappings_give_each_stream_its_cap() -> None:
    lanes = parse("transactional:2:8,bulk:3:1:0.5")
    config = DeployConfig(worker="lambda", pool=PoolConfig(shards=5, streams=lanes),
                          lambda_worker=LambdaConfig(max_concurrency=24))  # fmt: skip
    resources = template(config)["Resources"]
    ceilings = [resources[f"Shard{k}EventSource"]["Properties"]["ScalingConfig"]
                ["MaximumConcurrency"] for k in range(5)]  # fmt: skip
    # Transactional's two shards may use all 24 between them; bulk's three at most half.
    assert ceilings == [12, 12, 4, 4, 4]
    tiny = LambdaConfig(max_concurrency=4).shard_concurrency(config.pool, floor=2)
    assert tiny == (2, 2, 2, 2, 2)  # never under Lambda's floor
