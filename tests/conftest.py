"""Shared fixtures: moto's SQS server over HTTP, a provisioned pool per test, an SMTP sink."""

import logging
import os
import pathlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from moto.server import ThreadedMotoServer
from prometheus_client import CollectorRegistry

from aws import client as aws
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.provision import delete_pool, provision
from pool.sqs import SqsClient
from tests.support.smtp_sink import SmtpSink

# Tests never reach AWS: fixed fake credentials, a region, and no endpoint from outside.
for _name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"

REGION = "us-east-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """moto's SQS server on a free loopback port, for the whole session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def pool_config(sqs_endpoint: str) -> PoolConfig:
    """A two-shard pool with a name of its own, so tests never share queues."""
    return PoolConfig(
        prefix=f"t{uuid.uuid4().hex[:10]}",
        shards=2,
        endpoint_url=sqs_endpoint,
        region=REGION,
        send_deadline_s=3.0,
    )


@pytest.fixture
async def provisioned(pool_config: PoolConfig) -> AsyncIterator[PoolConfig]:
    """``pool_config`` with its queues created; deleted afterwards (moto slows as it fills)."""
    async with SqsClient.from_config(pool_config) as client:
        await provision(client, pool_config)
    yield pool_config
    async with SqsClient.from_config(pool_config) as client:
        await delete_pool(client, pool_config)


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh metrics registry."""
    return CollectorRegistry()


@pytest.fixture
def pool_metrics(registry: CollectorRegistry) -> PoolMetrics:
    """Pool metrics on the test's registry."""
    return PoolMetrics(registry)


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    """A recording SMTP server on a free loopback port."""
    async with SmtpSink() as sink:
        yield sink


@pytest.fixture
def small_disk(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 64 MiB tmpfs of its own (needs root, as in CI; skipped with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def pytest_configure(config: pytest.Config) -> None:
    """With MAILPOOL_AWS_RECORD set (``make test`` sets it), every AWS call the code makes
    is recorded there, in this process and in the mailpool processes the tests start."""
    aws.record_calls(os.environ.get("MAILPOOL_AWS_RECORD") or None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (``make test`` runs two workers), the scenarios that run whole stacks of
    processes (faults, benchmarks) run one after another on one worker, never beside each
    other: each needs the machine's second core for its own processes."""
    for item in items:
        if item.get_closest_marker("faults") or item.path.name == "test_benchmarks.py":
            item.add_marker(pytest.mark.xdist_group("stacks"))
