"""The `mailpool` command: queues, and intake and sender as separate processes."""

import asyncio
import os
import pathlib
import re
import signal
import sys

import aiohttp
import pytest

from localsqs.server import LocalSqsConfig
from mailpool.cli import main
from pool.config import PoolConfig
from tests.support.smtp_sink import SmtpSink


def process_env(config: PoolConfig, sink: SmtpSink) -> dict[str, str]:
    """What a `mailpool intake` or `sender` child needs to use ``config``'s pool and ``sink``."""
    return {
        "AWS_ENDPOINT_URL": str(config.endpoint_url),
        "AWS_REGION": "us-east-1",
        "MAILPOOL_QUEUE_PREFIX": config.prefix,
        "MAILPOOL_SHARDS": str(config.shards),
        "MAILPOOL_HTTP_PORT": "0",
        "MAILPOOL_METRICS_PORT": "0",
        "MAILPOOL_SMTP_PORT": str(sink.port),
        "MAILPOOL_WAIT_TIME": "1",
    }


def pool_flags(config: PoolConfig) -> list[str]:
    return [
        "--prefix", config.prefix, "--shards", str(config.shards),
        "--endpoint-url", str(config.endpoint_url), "--region", "us-east-1",
    ]  # fmt: skip


def test_queues_create_then_status(
    pool_config: PoolConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queues", "create", *pool_flags(pool_config)]) == 0
    created = capsys.readouterr().out
    assert f"{pool_config.prefix}-1.fifo" in created
    assert f"{pool_config.prefix}-1-dlq.fifo" in created
    assert main(["queues", "status", *pool_flags(pool_config)]) == 0
    status = capsys.readouterr().out.splitlines()
    assert status[0].split() == ["shard", "visible", "in", "flight", "delayed", "dlq", "queue"]
    assert status[1].split() == ["0", "0", "0", "0", "0", f"{pool_config.prefix}-0.fifo"]


def test_status_of_a_pool_that_does_not_exist_says_how_to_create_it(
    pool_config: PoolConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queues", "status", *pool_flags(pool_config)]) == 1
    assert "mailpool queues create" in capsys.readouterr().err


def test_a_malformed_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAILPOOL_SHARDS", "four")
    assert main(["queues", "status"]) == 2
    assert "MAILPOOL_SHARDS" in capsys.readouterr().err


async def start(*args: str, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailpool", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(20):
        first = (await process.stdout.readline()).decode()
    return process, first


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(20):
        await process.communicate()
    assert process.returncode is not None
    return process.returncode


async def test_intake_and_sender_as_separate_processes(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    env = process_env(provisioned, smtp_sink)
    intake, intake_line = await start("intake", env=env)
    sender, sender_line = await start("sender", env=env)
    try:
        match = re.search(r"http://127\.0\.0\.1:\d+", intake_line)
        assert match, intake_line
        async with aiohttp.ClientSession() as http:
            email = {"from": "a@example.test", "to": "b@example.test", "text": "separate"}
            async with http.post(f"{match.group(0)}/v1/emails", json=email) as response:
                assert response.status == 202
                message_id = (await response.json())["id"]
        [delivery] = await smtp_sink.wait_for(1)
        assert delivery.mailpool_id == message_id
        assert "metrics on port" in sender_line
    finally:
        assert await stop(intake) == 0
        assert await stop(sender) == 0


def test_localsqs_refuses_a_reachable_address_unless_told_it_is_unsafe(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["localsqs", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)]
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0" in said
    assert "--expose-unauthenticated" in said
    assert not (tmp_path / "localsqs.db").exists()  # refused before opening anything
    LocalSqsConfig(host="0.0.0.0", exposed=True).check_exposure()  # told: allowed
    for loopback in ("127.0.0.1", "::1", "localhost"):
        LocalSqsConfig(host=loopback).check_exposure()
