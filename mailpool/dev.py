"""The local stack: localsqs, the queue pool, intake, sender and SMTP capture on 127.0.0.1."""

import asyncio
import dataclasses
import logging
import os
import pathlib
import sys
import time
from dataclasses import dataclass

from intake.config import IntakeConfig
from intake.service import IntakeService
from localsqs.server import LocalSqs, LocalSqsConfig
from mailpool.capture import CaptureServer, MaildirHandler
from pool.config import PoolConfig
from pool.pool import QueuePool, depth_total
from pool.provision import provision
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService

log = logging.getLogger(__name__)

REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True, slots=True)
class DevConfig:
    """Ports and paths of the local stack (0 picks a free port)."""

    sqs_port: int = 9324
    smtp_port: int = 2525
    outbox: pathlib.Path = pathlib.Path("var/outbox")
    sqs_data: pathlib.Path = pathlib.Path("var/localsqs")
    #: On stop: how long to wait for the sender to deliver what is queued.
    drain_s: float = 15.0


async def _drain(pool: QueuePool, seconds: float) -> int:
    """Wait until the pool holds no message or ``seconds`` pass; what is left."""
    deadline = time.monotonic() + seconds
    left = depth_total(await pool.depth())
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        left = depth_total(await pool.depth())
    return left


def _banner(
    intake: IntakeService, sender: SenderService, sqs: LocalSqs, smtp: CaptureServer
) -> str:
    pool = intake.pool.config
    example = (
        '{"from": "Ana Díaz <ana@example.test>", "to": "bob@example.test", '
        '"subject": "Hello from mailpool", "text": "It works."}'
    )
    return "\n".join(
        [
            "mailpool local stack is up",
            f"  intake   {intake.url}  (POST /v1/emails, /v1/emails/batch; "
            "GET /openapi.json, /readyz, /metrics)",
            f"  sender   metrics at http://127.0.0.1:{sender.metrics_port}/metrics",
            f"  SQS      {sqs.url}  (localsqs, data in {sqs.config.data_dir}/; queues "
            f"{pool.queue_name(0)} .. {pool.queue_name(pool.shards - 1)}, each with a DLQ)",
            f"  SMTP     127.0.0.1:{smtp.port} -> Maildir {smtp.handler.path}/",
            "Send one:",
            f"  curl -sS -X POST {intake.url}/v1/emails -H 'Content-Type: application/json' \\",
            f"       -d '{example}'",
            f"Read it:  ls {smtp.handler.path}/new/ && cat {smtp.handler.path}/new/*",
            "Ctrl-C stops intake, lets the sender deliver what was accepted, then exits.",
        ]
    )


async def run_dev(
    dev: DevConfig,
    pool_config: PoolConfig,
    intake_config: IntakeConfig,
    sender_config: SenderConfig,
    stop: asyncio.Event,
) -> int:
    """Run the whole stack until ``stop`` is set; then stop it in order."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "mailpool-dev")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "mailpool-dev")
    engine = LocalSqsConfig(port=dev.sqs_port, data_dir=dev.sqs_data, region=REGION)
    async with LocalSqs(engine) as sqs:
        pool_config = dataclasses.replace(pool_config, endpoint_url=sqs.url, region=REGION)
        async with SqsClient.from_config(pool_config) as client:
            await provision(client, pool_config)
        handler = MaildirHandler(dev.outbox)
        async with CaptureServer(handler, port=dev.smtp_port) as smtp:
            provider = SmtpProvider(SmtpConfig(host="127.0.0.1", port=smtp.port))
            async with SenderService(pool_config, sender_config, provider) as sender:
                intake = IntakeService(pool_config, intake_config)
                async with intake:
                    print(_banner(intake, sender, sqs, smtp), flush=True)
                    await stop.wait()
                    print("stopping intake ...", file=sys.stderr, flush=True)
                print("delivering what was accepted ...", file=sys.stderr, flush=True)
                left = await _drain(sender.pool, dev.drain_s)
            if left:
                print(
                    f"{left} accepted message(s) are still queued; they are kept in "
                    f"{dev.sqs_data}/ and delivered on the next start",
                    file=sys.stderr,
                    flush=True,
                )
            print(f"stopped; {handler.count} message(s) delivered to {dev.outbox}/", flush=True)
    return 0
