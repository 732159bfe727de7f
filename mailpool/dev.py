"""The local stack on 127.0.0.1: localsqs, the queue pool, intake, sender, SMTP capture, and
the webhooks dispatcher with a local receiver that verifies and keeps every event."""

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from core.runtime import settle_gc
from intake.config import IntakeConfig
from intake.service import IntakeService
from localsqs.server import LocalSqs, LocalSqsConfig
from mailpool.capture import CaptureServer, MaildirHandler
from mailpool.receiver import Receiver
from pool.blobs import BlobConfig, BlobStore
from pool.config import PoolConfig
from pool.pool import QueuePool, depth_total
from pool.provision import provision
from pool.sqs import SqsClient
from pool.streams import DEFAULT, Stream
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from serverless.config import LambdaConfig
from serverless.service import LocalLambdaService
from serverless.worker import LambdaWorker
from state.config import StateConfig, decode_secret
from state.config import new_secret as new_state_secret
from state.table import StateTable
from webhooks.config import WebhooksConfig
from webhooks.endpoints import Endpoint, from_env
from webhooks.service import WebhooksService
from webhooks.signing import new_secret, secret_key

log = logging.getLogger(__name__)

REGION = "us-east-1"


#: The local stack's bucket for large emails, on the embedded engine.
BODY_BUCKET = "mailpool-bodies"


@dataclass(frozen=True, kw_only=True, slots=True)
class DevConfig:
    """Ports and paths of the local stack (0 picks a free port)."""

    sqs_port: int = 9324
    smtp_port: int = 2525
    outbox: pathlib.Path = pathlib.Path("var/outbox")
    sqs_data: pathlib.Path = pathlib.Path("var/localsqs")
    #: Where the local webhook receiver appends the events it verified (JSON lines).
    events: pathlib.Path = pathlib.Path("var/events.jsonl")
    webhooks_metrics_port: int = 9102
    #: On stop: how long to wait for the sender to deliver what is queued.
    drain_s: float = 15.0
    #: The state secret (signed ids, unsubscribe links), made on first start and kept.
    state_secret: pathlib.Path = pathlib.Path("var/state.secret")
    #: ``sender`` (``mailpool sender``) or ``lambda`` (the Lambda worker, invoked by a
    #: local event source as Lambda's SQS event source mappings would).
    worker: str = "sender"


def _local_secret(path: pathlib.Path) -> bytes | None:
    """The local stack's state secret: read from ``path``, or made and kept there."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new_state_secret() + "\n")
        path.chmod(0o600)
    return decode_secret(path.read_text().strip())


async def _drain(count: Callable[[], Awaitable[int]], seconds: float) -> int:
    """Wait until ``count()`` is 0 (nothing left queued) or ``seconds`` pass; what is left."""
    deadline = time.monotonic() + seconds
    left = await count()
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        left = await count()
    return left


async def _queued(pool: QueuePool) -> int:
    return depth_total(await pool.depth())


def with_streams(pool: PoolConfig) -> PoolConfig:
    """The local stack's pool: unless MAILPOOL_STREAMS says otherwise, two streams out of the
    box, ``transactional`` (weight 8) and ``bulk`` (weight 1, at most 3/4 of a sender's
    concurrency), the shards split between them."""
    if pool.streams or pool.shards < 2:
        return pool
    bulk = pool.shards // 2
    streams = (Stream(DEFAULT, pool.shards - bulk, 8.0), Stream("bulk", bulk, 1.0, 0.75))
    return dataclasses.replace(pool, streams=streams)


def _streams(pool: PoolConfig) -> str:
    """Each stream and its queues, for the banner."""
    parts = []
    for stream in pool.all_streams:
        first, shards = pool.span(stream.name)
        names = f"{pool.queue_name(first)} .. {pool.queue_name(first + shards - 1)}"
        parts.append(f"{stream.name} ({names}; weight {stream.weight:g}, cap {stream.cap:.0%})")
    return "; ".join(parts)


def _banner(
    intake: IntakeService,
    sender: SenderService | LocalLambdaService,
    sqs: LocalSqs,
    smtp: CaptureServer,
    hooks: WebhooksService,
    receiver: Receiver,
) -> str:
    pool = intake.pool.config
    example = (
        '{"from": "Ana Díaz <ana@example.test>", "to": "bob@example.test", '
        '"subject": "Hello from mailpool", "text": "It works."}'
    )
    return "\n".join(
        [
            "mailpool local stack is up",
            f"  intake   {intake.url}  (POST /v1/emails, /v1/emails/batch; GET "
            "/v1/emails/{id}, /v1/suppressions, /openapi.json, /readyz, /metrics)",
            f"  sender   {_face(sender)}metrics at http://127.0.0.1:{sender.metrics_port}/metrics",
            f"  SQS      {sqs.url}  (localsqs, data in {sqs.config.data_dir}/; each queue with "
            "a DLQ; "
            f"DynamoDB table {pool.prefix}-state and S3 bucket {BODY_BUCKET} for large emails "
            "on the same endpoint)",
            f'  streams  {_streams(pool)}; an email names one with "stream"',
            f"  SMTP     127.0.0.1:{smtp.port} -> Maildir {smtp.handler.path}/",
            f"  webhooks {receiver.url} (signed, verified) -> {receiver.path}; dispatcher "
            f"metrics at http://127.0.0.1:{hooks.metrics_port}/metrics",
            *(
                f"           and {e.url} ({e.name}, from MAILPOOL_WEBHOOK_URL)"
                for e in hooks.endpoints
                if e.name != "local"
            ),
            "Send one:",
            f"  curl -sS -X POST {intake.url}/v1/emails -H 'Content-Type: application/json' \\",
            f"       -d '{example}'",
            f"Read it:  ls {smtp.handler.path}/new/ && cat {smtp.handler.path}/new/*",
            f"Its events (email.sent, ...):  cat {receiver.path}",
            "Ctrl-C stops intake, lets the sender deliver what was accepted, then exits.",
        ]
    )


def _face(sender: SenderService | LocalLambdaService) -> str:
    if isinstance(sender, LocalLambdaService):
        return "the Lambda worker, invoked by a local SQS event source; "
    return ""


def _worker(
    dev: DevConfig,
    pool: PoolConfig,
    config: SenderConfig,
    provider: SmtpProvider,
    blobs: BlobStore,
    state: StateConfig,
) -> SenderService | LocalLambdaService:
    """The stack's sender: ``mailpool sender``'s, or the Lambda worker's face."""
    if dev.worker == "lambda":
        worker = LambdaWorker(
            pool, config, LambdaConfig.from_env(), provider, blobs=blobs, state=state
        )
        return LocalLambdaService(
            worker, pool, metrics_port=config.metrics_port, wait_s=config.wait_time_s
        )
    return SenderService(pool, config, provider, blobs=blobs, state=state)


def extra_endpoints(environ: Mapping[str, str] = os.environ) -> list[Endpoint]:
    """Endpoints beside the local receiver, as ``mailpool webhooks`` reads them
    (``MAILPOOL_WEBHOOK_URL``/``_SECRET``, ``MAILPOOL_WEBHOOKS_FILE``): a load tester's, say.
    On the local stack they may be plain HTTP on loopback."""
    return from_env({**environ, "MAILPOOL_WEBHOOK_ALLOW_PRIVATE": "true"})


async def run_dev(
    dev: DevConfig,
    pool_config: PoolConfig,
    intake_config: IntakeConfig,
    sender_config: SenderConfig,
    stop: asyncio.Event,
    state_config: StateConfig | None = None,
) -> int:
    """Run the whole stack until ``stop`` is set; then stop it in order."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "mailpool-dev")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "mailpool-dev")
    state_config = state_config or StateConfig(table=f"{pool_config.prefix}-state")
    engine = LocalSqsConfig(port=dev.sqs_port, data_dir=dev.sqs_data, region=REGION)
    async with contextlib.AsyncExitStack() as stack:
        sqs = await stack.enter_async_context(LocalSqs(engine))
        pool_config = dataclasses.replace(
            with_streams(pool_config), endpoint_url=sqs.url, region=REGION
        )
        async with SqsClient.from_config(pool_config) as client:
            await provision(client, pool_config)
        state = dataclasses.replace(
            state_config,
            enabled=True,
            endpoint_url=sqs.url,
            region=REGION,
            secret=state_config.secret or _local_secret(dev.state_secret),
            public_url=state_config.public_url or f"http://127.0.0.1:{intake_config.port}",
        )
        async with StateTable(state) as table:
            await table.provision()
        # Emails larger than a queue message go to a bucket on the same engine, as on AWS.
        bodies = BlobConfig(bucket=BODY_BUCKET, endpoint_url=sqs.url, region=REGION)
        async with BlobStore(bodies) as blobs:
            await blobs.provision()
        handler = MaildirHandler(dev.outbox)
        smtp = await stack.enter_async_context(CaptureServer(handler, port=dev.smtp_port))
        secret = new_secret()  # a fresh one each run: only this receiver knows it
        receiver = await stack.enter_async_context(Receiver(secret_key(secret), dev.events))
        local = Endpoint(
            name="local", url=receiver.url, key=secret_key(secret), allow_http=True, internal=True
        )
        hooks_config = WebhooksConfig(wait_time_s=2, metrics_port=dev.webhooks_metrics_port)
        extra = extra_endpoints()
        hooks = await stack.enter_async_context(
            WebhooksService(pool_config, hooks_config, [local, *extra], state=state)
        )
        provider = SmtpProvider(SmtpConfig(host="127.0.0.1", port=smtp.port))
        worker = _worker(dev, pool_config, sender_config, provider, BlobStore(bodies), state)
        async with worker as sender:
            intake = IntakeService(pool_config, intake_config, blobs=BlobStore(bodies), state=state)
            async with intake:
                settle_gc()
                print(_banner(intake, sender, sqs, smtp, hooks, receiver), flush=True)
                await stop.wait()
                print("stopping intake ...", file=sys.stderr, flush=True)
            print("delivering what was accepted ...", file=sys.stderr, flush=True)
            left = await _drain(lambda: _queued(sender.pool), dev.drain_s)
            await _drain(sender.pool.events_waiting, dev.drain_s)
        if left:
            print(
                f"{left} accepted message(s) are still queued; they are kept in "
                f"{dev.sqs_data}/ and delivered on the next start",
                file=sys.stderr,
                flush=True,
            )
        print(
            f"stopped; {handler.count} message(s) delivered to {dev.outbox}/, "
            f"{receiver.count} event(s) to {dev.events}",
            flush=True,
        )
    return 0
