"""The Lambda worker deployed: its package runs alone, and its stack is made on moto.

The package is built once (``mailpool deploy package``), unpacked into an empty directory
and run there by an isolated interpreter that sees nothing but the standard library and
the package. The stack (``--worker lambda``) is created on moto's CloudFormation with the
package in moto's S3; the function's own environment, as moto keeps it, then configures
that interpreter, which answers an SQS event built from the stack's queue as Lambda does.
"""

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
import zipfile
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session

from intake.config import IntakeConfig
from intake.service import IntakeService
from mailpool import functions
from mailpool.cloudformation import DeployConfig, template, template_yaml
from mailpool.package import build
from pool.blobs import BlobConfig, BlobStore
from pool.config import PoolConfig
from serverless.records import record_of
from state.config import StateConfig
from tests.deploy.test_template import _ses_sent, _state_secret
from tests.support.waiting import until

#: Run by the isolated interpreter: the handler from the unpacked package alone, twice
#: (cold, then warm), each answer and its time on a line.
RUN = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from serverless.handler import handler
imported = time.perf_counter() - started

class Context:
    def __init__(self):
        self.deadline = time.monotonic() + 60
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)

for path in sys.argv[2:]:
    event = json.load(open(path))
    began = time.perf_counter()
    answer = handler(event, Context())
    print(json.dumps({"answer": answer, "seconds": time.perf_counter() - began,
                      "import": imported, "path": [p for p in sys.path if "site-packages" in p]}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The deployment zip, built once."""
    return build(tmp_path_factory.mktemp("package") / "mailpool-lambda.zip").path


def test_the_package_holds_the_handler_and_fits_lambda(package: pathlib.Path) -> None:
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        unpacked = sum(info.file_size for info in archive.infolist())
    assert "serverless/handler.py" in names
    assert any(n.startswith("uvloop/") and n.endswith(".so") for n in names)  # binary wheels
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    assert unpacked < 250 * 1024 * 1024


async def _stack(endpoint: str, body: str, parameters: dict[str, str]) -> dict[str, str]:
    name = f"mp{uuid.uuid4().hex[:8]}"
    async with get_session().create_client(
        "cloudformation", region_name="us-east-1", endpoint_url=endpoint
    ) as cloudformation:
        await cloudformation.create_stack(
            StackName=name, TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )  # fmt: skip
        for _ in range(200):
            [stack] = (await cloudformation.describe_stacks(StackName=name))["Stacks"]
            if stack["StackStatus"] != "CREATE_IN_PROGRESS":
                break
            await asyncio.sleep(0.1)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]} | {"StackName": name}


async def _upload(endpoint: str, package: pathlib.Path) -> tuple[str, str]:
    bucket, key = f"code-{uuid.uuid4().hex[:8]}", "mailpool-lambda.zip"
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint
    ) as s3:
        await s3.create_bucket(Bucket=bucket)
        body = await asyncio.to_thread(package.read_bytes)
        await s3.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket, key


async def _event(endpoint: str, queue_url: str) -> dict[str, Any]:
    """Every message of the queue, as Lambda's event source mapping hands them over."""
    async with get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url=endpoint
    ) as sqs:
        found_arn = await sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        arn = found_arn["Attributes"]
        found: list[dict[str, Any]] = []
        for _ in range(20):
            answer = await sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"],
            )  # fmt: skip
            found += answer.get("Messages", [])
            if len(found) >= 2:
                break
    return {"Records": [record_of(m, arn["QueueArn"]) for m in found]}


# moto's CloudFormation leaves out what it does not know (alarms, policies, secrets).
@pytest.mark.filterwarnings("ignore:Tried to parse AWS.+:UserWarning")
@pytest.mark.slow
async def test_the_lambda_stack_on_moto_runs_the_packaged_handler_from_its_environment(
    sqs_endpoint: str,
    package: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool_config = PoolConfig(prefix=f"lf{uuid.uuid4().hex[:6]}", shards=1)
    config = DeployConfig(worker="lambda", pool=pool_config)
    bucket, key = await _upload(sqs_endpoint, package)
    # moto runs functions in Docker unless told otherwise; this test runs the packaged
    # handler itself (in an isolated interpreter), so moto's simple Lambda backend will do.
    async with aiohttp.ClientSession() as http, http.post(f"{sqs_endpoint}/moto-api/config",
                         json={"lambda": {"use_docker": False}}) as answer:  # fmt: skip
        assert answer.status == 201
    outputs = await _stack(sqs_endpoint, template_yaml(template(config)),
                           {"LambdaCodeBucket": bucket, "LambdaCodeKey": key})  # fmt: skip
    name = f"{outputs['StackName']}-sender"
    try:
        await _run_the_stack(sqs_endpoint, package, tmp_path, monkeypatch, config, outputs, name)
    finally:  # moto cannot dump its models (data.json, other tests read it) with a function
        async with get_session().create_client(
            "cloudformation", region_name="us-east-1", endpoint_url=sqs_endpoint
        ) as cloudformation:
            await cloudformation.delete_stack(StackName=outputs["StackName"])


async def _run_the_stack(
    sqs_endpoint: str,
    package: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    config: DeployConfig,
    outputs: dict[str, str],
    name: str,
) -> None:
    async with get_session().create_client(
        "lambda", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as lam:
        function = await lam.get_function_configuration(FunctionName=name)
        mappings = (await lam.list_event_source_mappings(FunctionName=name))["EventSourceMappings"]
        # moto would invoke the function itself on each send (and delete what it was given):
        # this test invokes it, with the event built as Lambda builds it, instead.
        for mapping in mappings:
            await lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    assert function["Handler"] == functions.HANDLER
    assert function["Timeout"] == 60
    assert [m["EventSourceArn"].rsplit(":", 1)[1] for m in mappings] == [config.pool.queue_name(0)]
    env: dict[str, str] = function["Environment"]["Variables"]
    assert "MAILPOOL_STATE_SECRET" not in env  # only its ARN, read at cold start
    # moto's CloudFormation makes no secrets (and so leaves the ARN unresolved): the secret
    # is put where the stack puts it, and the function is given its ARN.
    secret = await _state_secret(sqs_endpoint, outputs["StateSecretName"])
    async with get_session().create_client(
        "secretsmanager", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as secrets:
        described = await secrets.describe_secret(SecretId=outputs["StateSecretName"])
    assert env["MAILPOOL_STATE_SECRET_ARN"] in (described["ARN"], "${StateSecret}")
    env["MAILPOOL_STATE_SECRET_ARN"] = described["ARN"]
    async with get_session().create_client(
        "sesv2", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as ses:
        await ses.create_email_identity(EmailIdentity="shop.example.test")
    # Producers reach the queue through intake, configured from the stack's outputs.
    for pair in outputs["Environment"].split(" "):
        monkeypatch.setenv(*pair.split("=", 1))
    monkeypatch.setenv("AWS_ENDPOINT_URL", sqs_endpoint)
    monkeypatch.setenv("MAILPOOL_STATE_SECRET", secret)
    pool = PoolConfig.from_env()
    assert pool.visibility_timeout_s == 6 * 60  # six function timeouts, as Lambda asks
    state = StateConfig.from_env(prefix=pool.prefix)
    big = "x" * 1_200_000  # past the queue's limit: carried through S3
    emails = [
        {"from": "shop@shop.example.test", "to": "bob@example.test", "text": "small"},
        {"from": "shop@shop.example.test", "to": "eve@example.test", "text": big},
    ]
    async with (
        IntakeService(pool, IntakeConfig(port=0), blobs=BlobStore(BlobConfig.from_env()),
                      state=state) as intake,
        aiohttp.ClientSession() as http,
    ):  # fmt: skip
        ids = []
        for email in emails:
            async with http.post(f"{intake.url}/v1/emails", json=email) as response:
                assert response.status == 202, await response.text()
                ids.append((await response.json())["id"])
        event = await _event(sqs_endpoint, outputs["Shard0QueueUrl"])
        assert len(event["Records"]) == 2
        before = await _ses_sent(sqs_endpoint)
        printed = _run_isolated(package, tmp_path, event, env, sqs_endpoint)
        results = _answers(printed)
        assert [r["answer"] for r in results] == [{"batchItemFailures": []}]
        assert results[0]["path"] == []  # no site-packages: the package alone
        # The invocation's metrics, as one CloudWatch Embedded Metric Format line.
        [emf] = [line for line in printed if "_aws" in line]
        assert emf["emails_delivered"] == [2.0]
        [directive] = emf["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "mailpool"

        async def sent() -> bool:
            states = []
            for email_id in ids:
                async with http.get(f"{intake.url}/v1/emails/{email_id}") as response:
                    states.append((await response.json()).get("state"))
            return states == ["sent", "sent"]

        await until(sent, 20)
        assert await _ses_sent(sqs_endpoint) > before
        # The large email's body went with its message, as in the sender process.
        async with get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=sqs_endpoint
        ) as s3:
            bucket = BlobConfig.from_env().bucket
            listed = await s3.list_objects_v2(Bucket=bucket)
            assert listed.get("Contents", []) == []


def _run_isolated(
    package: pathlib.Path,
    tmp_path: pathlib.Path,
    event: dict[str, Any],
    env: dict[str, str],
    endpoint: str,
) -> list[dict[str, Any]]:
    """Unpack ``package`` into an empty directory and answer ``event`` with its handler in
    an isolated interpreter (``-I -S``: no site-packages, no user site, no PYTHONPATH)."""
    unpacked = tmp_path / "task"
    unpacked.mkdir()
    with zipfile.ZipFile(package) as archive:
        archive.extractall(unpacked)
    (tmp_path / "event.json").write_text(json.dumps(event))
    environment = {
        **env,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "PATH": os.environ.get("PATH", ""),
        **({"MAILPOOL_AWS_RECORD": os.environ["MAILPOOL_AWS_RECORD"]}
           if "MAILPOOL_AWS_RECORD" in os.environ else {}),
    }  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", RUN, str(unpacked), str(tmp_path / "event.json")],
        capture_output=True, text=True, env=environment, timeout=120, check=False, cwd=unpacked,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert time.monotonic() - started < 120
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _answers(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "answer" in line]
