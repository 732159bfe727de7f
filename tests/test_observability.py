"""Metrics checked by Prometheus's own tools, and the dashboard queried on a real Prometheus."""

import asyncio
import contextlib
import json
import pathlib
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from intake.config import IntakeConfig
from intake.service import IntakeService
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from tests.support.engines import ThreadedLocalSqs
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import until
from tests.support.webhook_sink import WebhookSink
from webhooks.config import WebhooksConfig
from webhooks.endpoints import Endpoint
from webhooks.service import WebhooksService
from webhooks.signing import new_secret, secret_key

DEPLOY = pathlib.Path(__file__).parent.parent / "deploy"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed")
EMAIL = {"from": "a@example.test", "to": "b@example.test", "subject": "s", "text": "t"}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("observability")))
    yield server.start()
    server.stop()


@dataclass
class Running:
    intake: IntakeService
    sender: SenderService
    sink: SmtpSink
    webhooks: WebhooksService


@contextlib.asynccontextmanager
async def stack(engine: str, sink: SmtpSink) -> AsyncIterator[Running]:
    prefix = f"obs{uuid.uuid4().hex[:8]}"
    config = PoolConfig(prefix=prefix, shards=2, endpoint_url=engine, region="us-east-1")
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    settings = SenderConfig(wait_time_s=1, depth_interval_s=0.5, metrics_port=0, backoff_s=1)
    provider = SmtpProvider(SmtpConfig(port=sink.port))
    secret = new_secret()
    async with WebhookSink(secret) as hooks:
        endpoint = Endpoint(name="crm", url=hooks.url, key=secret_key(secret), allow_http=True,
                            internal=True)  # fmt: skip
        async with (
            WebhooksService(
                config, WebhooksConfig(wait_time_s=1, metrics_port=0), [endpoint]
            ) as webhooks,
            SenderService(config, settings, provider) as sender,
            IntakeService(config, IntakeConfig(port=0)) as intake,
        ):
            yield Running(intake, sender, sink, webhooks)


async def traffic(running: Running) -> None:
    """Five deliverable emails, one the relay refuses for good, one invalid."""
    running.sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 unknown"
    async with aiohttp.ClientSession() as http:
        for doc in [EMAIL] * 5 + [{**EMAIL, "to": "gone@example.test"}, {**EMAIL, "to": "x"}]:
            async with http.post(f"{running.intake.url}/v1/emails", json=doc):
                pass
    await running.sink.wait_for(5)


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        return await response.text()


@needs_promtool
async def test_promtool_accepts_every_process_s_metrics(engine: str, smtp_sink: SmtpSink) -> None:
    async with stack(engine, smtp_sink) as running:
        await traffic(running)
        exposition = {
            "intake": await scrape(running.intake.url),
            "sender": await scrape(f"http://127.0.0.1:{running.sender.metrics_port}"),
            "webhooks": await scrape(f"http://127.0.0.1:{running.webhooks.metrics_port}"),
        }
    for name, text in exposition.items():
        check = await asyncio.create_subprocess_exec(
            str(PROMTOOL), "check", "metrics", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await check.communicate(text.encode())
        assert check.returncode == 0, (name, out.decode())
        assert out.decode().strip() == "", (name, out.decode())


@needs_promtool
def test_alert_rules_are_valid_and_their_unit_tests_pass() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [str(PROMTOOL), *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "mailpool.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def test_the_dashboard_uses_only_metrics_mailpool_exports(
    engine: str, smtp_sink: SmtpSink
) -> None:
    async with stack(engine, smtp_sink) as running:
        await traffic(running)
        await running.sender.sender.depth.poll()  # the depth gauges exist from the first poll
        exported = "".join(
            [
                await scrape(running.intake.url),
                await scrape(f"http://127.0.0.1:{running.sender.metrics_port}"),
                await scrape(f"http://127.0.0.1:{running.webhooks.metrics_port}"),
            ]
        )
    names = set(re.findall(r"^([a-z_:]+)(?:\{| )", exported, re.MULTILINE))
    for query in dashboard_queries():
        for metric in re.findall(r"\b((?:mailpool|process)_[a-z_]+)", query):
            assert metric in names, (metric, query)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def query(http: aiohttp.ClientSession, base: str, expr: str) -> list[Any]:
    async with http.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        answer = await response.json()
    assert answer["status"] == "success", (expr, answer)
    return list(answer["data"]["result"])


async def value(http: aiohttp.ClientSession, base: str, expr: str) -> float | None:
    result = await query(http, base, expr)
    return float(result[0]["value"][1]) if result else None


@needs_prometheus
async def test_a_real_prometheus_scrapes_the_stack_and_answers_the_dashboard(
    engine: str, smtp_sink: SmtpSink, tmp_path: pathlib.Path
) -> None:
    async with stack(engine, smtp_sink) as running:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
            "scrape_configs": [
                {"job_name": "mailpool-intake",
                 "static_configs": [{"targets": [f"127.0.0.1:{running.intake.port}"]}]},
                {"job_name": "mailpool-sender",
                 "static_configs": [{"targets": [f"127.0.0.1:{running.sender.metrics_port}"]}]},
                {"job_name": "mailpool-webhooks",
                 "static_configs": [{"targets": [
                     f"127.0.0.1:{running.webhooks.metrics_port}"]}]},
            ],
        }))  # fmt: skip
        server = await asyncio.create_subprocess_exec(
            str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            await traffic(running)
            async with aiohttp.ClientSession() as http:

                async def settled() -> bool:
                    try:
                        delivered = await value(
                            http,
                            base,
                            'sum(mailpool_messages_processed_total{outcome="delivered"})',
                        )
                        dead = await value(
                            http, base, 'sum(mailpool_queue_messages{state="dead_lettered"})'
                        )
                    except aiohttp.ClientError:
                        return False
                    accepted = await value(http, base, "sum(mailpool_emails_accepted_total)")
                    return delivered == 5 and dead == 1 and accepted == 6

                await until(settled, 30)
                assert await value(http, base, "sum(mailpool_emails_accepted_total)") == 6
                assert await value(http, base, "sum(mailpool_emails_refused_total)") == 1
                assert (
                    await value(
                        http,
                        base,
                        'sum(mailpool_messages_processed_total{outcome="dead_lettered"})',
                    )
                    == 1
                )
                jobs: dict[str, str] = {}

                async def every_job_up() -> bool:
                    ups = await query(http, base, 'sum by (job) (up{job=~"mailpool.*"})')
                    jobs.update({r["metric"]["job"]: r["value"][1] for r in ups})
                    return len(jobs) == 3

                with contextlib.suppress(TimeoutError):  # each target's first scrape
                    await until(every_job_up, 10)
                assert jobs == {
                    "mailpool-intake": "1",
                    "mailpool-sender": "1",
                    "mailpool-webhooks": "1",
                }
                # Every panel's query is valid PromQL and shows a value on a healthy stack
                # (0, not "no data": counters with known labels start at 0).
                # rate() needs two scrapes in its window: allow the first few seconds.
                empty: list[str] = []

                async def every_panel_shows_a_value() -> bool:
                    empty[:] = [e for e in dashboard_queries() if not await query(http, base, e)]
                    return not empty

                with contextlib.suppress(TimeoutError):
                    await until(every_panel_shows_a_value, 20)
                assert empty == []
                async with http.get(f"{base}/api/v1/rules") as response:
                    rules = (await response.json())["data"]["groups"][0]["rules"]
                assert len(rules) == 11
        finally:
            server.terminate()
            await server.wait()
