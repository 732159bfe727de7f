"""HTTP → SQS → sender → SMTP in one process, and no PII in any log line, answer, metric
or DLQ listing."""

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from core import logs
from intake.config import IntakeConfig
from intake.service import IntakeService
from mailpool.cli import main
from pool.config import PoolConfig
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from tests.support.smtp_sink import SmtpSink

CANARY_NAME = "Zebulon Canaryfield"
CANARY_TO = "zebulon.canary@pii-canary.test"
CANARY_SUBJECT = "canary-subject-7f3a"
CANARY_BODY = "canary-body-91c2"
EMAIL_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every record from every logger at DEBUG, formatted the way mailpool writes logs."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.setup("DEBUG", stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def test_full_flow_delivers_and_logs_no_pii(
    provisioned: PoolConfig,
    smtp_sink: SmtpSink,
    captured_logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    smtp_sink.handler.rcpt_replies["refused.canary@pii-canary.test"] = (
        "550 5.1.1 <refused.canary@pii-canary.test> no such user"
    )
    smtp_sink.handler.data_failures = 1
    emails: list[dict[str, Any]] = [
        {
            "from": f"{CANARY_NAME} <sender.canary@pii-canary.test>",
            "to": [f"{CANARY_NAME} <{CANARY_TO}>"],
            "subject": CANARY_SUBJECT,
            "text": CANARY_BODY,
            "group": "canary-group",
        },
        {
            "from": "sender.canary@pii-canary.test",
            "to": "refused.canary@pii-canary.test",
            "subject": CANARY_SUBJECT,
            "html": f"<p>{CANARY_BODY}</p>",
        },
        {"from": "x@pii-canary.test", "to": "not-an-address", "text": CANARY_BODY},
    ]
    answers: list[str] = []
    sender_config = SenderConfig(wait_time_s=1, backoff_s=1, grace_s=5.0, metrics_port=0)
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    async with (
        SenderService(provisioned, sender_config, provider) as sender,
        IntakeService(provisioned, IntakeConfig(port=0)) as intake,
        aiohttp.ClientSession() as http,
    ):
        ids = []
        for email in emails:
            async with http.post(f"{intake.url}/v1/emails", json=email) as response:
                answers.append(await response.text())
                if response.status == 202:
                    ids.append((await response.json())["id"])
        async with http.post(f"{intake.url}/v1/emails/batch", json=emails) as response:
            answers.append(await response.text())
        [delivery] = await smtp_sink.wait_for(1)
        await asyncio.sleep(1)
        for url in (intake.url, f"http://127.0.0.1:{sender.metrics_port}"):
            async with http.get(f"{url}/metrics") as response:
                answers.append(await response.text())
    flags = ["--prefix", provisioned.prefix, "--shards", str(provisioned.shards),
             "--endpoint-url", str(provisioned.endpoint_url), "--region", "us-east-1"]  # fmt: skip
    assert await asyncio.to_thread(main, ["dlq", "list", *flags]) == 0
    listing = capsys.readouterr().out
    assert ids[1] in listing  # the refused email is listed, by id
    answers.append(listing)
    assert len(ids) == 2
    assert delivery.mailpool_id == ids[0]
    assert CANARY_BODY in delivery.message.get_content()
    lines = captured_logs.getvalue()
    assert "dead-lettered" in lines  # the refused email's fate is logged, by id only
    assert ids[1] in lines
    for text in [lines, *answers]:
        for canary in (CANARY_NAME, CANARY_TO, CANARY_SUBJECT, CANARY_BODY, "canary-group"):
            assert canary not in text
        assert EMAIL_ADDRESS.findall(text) == []
