"""The deployment template: generated, linted, least-privilege, and deployable on moto."""

import asyncio
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
from mailpool import iam
from mailpool.cli import main
from mailpool.cloudformation import DeployConfig, _arns, template, template_yaml
from pool.blobs import BlobConfig, BlobStore
from pool.config import PoolConfig
from pool.provision import queue_attributes
from sender.config import SenderConfig
from sender.providers import make_provider
from sender.service import SenderService
from state.config import StateConfig, new_secret
from tests.support.waiting import until

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "aws" / "mailpool.yaml"
CFN_LINT = str(pathlib.Path(sys.executable).parent / "cfn-lint")


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
        "eight-smtp": DeployConfig(pool=PoolConfig(shards=8, ses_feedback=False),
                                   providers=("smtp",)),
        "no-events": DeployConfig(pool=PoolConfig(prefix="lean", shards=1, events=False)),
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


# moto's CloudFormation does not know alarms: it warns and leaves them out (see the README).
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.+CloudWatch.+Alarm:UserWarning")
async def test_a_stack_on_moto_runs_mailpool_configured_only_from_its_outputs(
    sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DeployConfig(pool=PoolConfig(prefix=f"cf{uuid.uuid4().hex[:6]}", shards=2,
                                          ses_feedback=True))  # fmt: skip
    outputs = await _stack(sqs_endpoint, template_yaml(template(config)))
    env = dict(pair.split("=", 1) for pair in outputs["Environment"].split(" "))
    assert env["MAILPOOL_STATE_TABLE"] == outputs["StateTableName"]
    assert env["MAILPOOL_S3_BUCKET"] == outputs["BodyBucketName"]
    for name, value in {
        **env,
        "AWS_ENDPOINT_URL": sqs_endpoint,
        "MAILPOOL_STATE_SECRET": new_secret(),
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
