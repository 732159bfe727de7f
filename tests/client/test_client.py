"""The Python client against a real intake: sends, batches, statuses, typed errors, and
retries that never send an email twice, through a proxy that loses answers."""

import asyncio
import base64
import dataclasses
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest
from mailpool_client import (
    AsyncClient,
    Attachment,
    Client,
    Email,
    InvalidRequest,
    InvalidWebhook,
    RetriesExhausted,
    Retry,
    Sent,
    verify,
)
from mailpool_client.models import EMAIL_FIELDS
from standardwebhooks.webhooks import Webhook

from core.envelope import Envelope
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.pool import QueuePool
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from tests.client.conftest import Stack, fault_proxy
from tests.support.smtp_sink import SmtpSink

FAST = Retry(budget_s=10, base_s=0.01, max_s=0.1)


def email(n: int = 0, **fields: Any) -> Email:
    base: dict[str, Any] = {
        "sender": "shop@example.test",
        "to": f"r{n}@example.test",
        "subject": f"s{n}",
        "text": "x",
    }
    return Email(**{**base, **fields})


async def queued(stack: Stack, expected: int, timeout_s: float = 20) -> list[Envelope]:
    """Every envelope in the pool (received and deleted), once ``expected`` are there."""
    found: list[Envelope] = []
    until = time.monotonic() + timeout_s
    async with QueuePool(stack.pool, PoolMetrics(process_registry())) as pool:
        while time.monotonic() < until:
            for shard in range(stack.pool.shards):
                got = await pool.receive(shard, max_messages=10, wait_s=0)
                found += [Envelope.decode(m.body) for m in got]
                await asyncio.gather(*(pool.delete(m) for m in got))
            if len(found) >= expected:
                await asyncio.sleep(0.3)  # anything more would be a duplicate: wait for it
                for shard in range(stack.pool.shards):
                    found += [
                        Envelope.decode(m.body)
                        for m in await pool.receive(shard, max_messages=10, wait_s=0)
                    ]
                return found
    return found


async def test_a_send_is_read_back_and_a_bad_email_is_a_typed_error(stack: Stack) -> None:
    async with fault_proxy(stack.url) as (url, faults), AsyncClient(url, retry=FAST) as mail:
        sent = await mail.send(email(attachments=[Attachment(filename="a.txt", content=b"hi")]))
        status = await mail.get(sent.id)
        assert (status.id, status.state) == (sent.id, "queued")
        before = faults.seen
        with pytest.raises(InvalidRequest) as refused:
            await mail.send(email(to="not an address"))
        assert (refused.value.status, refused.value.code, refused.value.field) == (
            422,
            "invalid_address",
            "to",
        )
        assert faults.seen == before + 1, "a 422 is never retried"
    [envelope] = await queued(stack, 1)
    assert envelope.id == sent.id


async def test_every_retriable_failure_is_retried_under_one_key(stack: Stack) -> None:
    async with fault_proxy(stack.url) as (url, faults), AsyncClient(url, retry=FAST) as mail:
        faults.plan = ["reset", "503", "503-wait", "429", "in_doubt", "drop"]
        started = time.monotonic()
        sent = await mail.send(email(group="g"))
        assert faults.done == {
            "reset": 1, "503": 1, "503-wait": 1, "429": 1, "in_doubt": 1, "drop": 1,
            "forwarded": 1,
        }  # fmt: skip
        assert time.monotonic() - started >= 0.4, "Retry-After (0.2 s, twice) was honoured"
    envelopes = await queued(stack, 1)
    assert [e.id for e in envelopes] == [sent.id], "stored by in_doubt and drop, yet only once"


async def test_a_budget_ends_the_retries(stack: Stack) -> None:
    short = Retry(budget_s=0.5, base_s=0.05, max_s=0.1)
    async with fault_proxy(stack.url) as (url, faults), AsyncClient(url, retry=short) as mail:
        faults.plan = ["503"] * 1000
        started = time.monotonic()
        with pytest.raises(RetriesExhausted) as gave_up:
            await mail.send(email())
        assert time.monotonic() - started < 1.0
        assert gave_up.value.tries >= 3


@pytest.mark.slow
async def test_a_thousand_sends_through_lost_answers_are_each_delivered_once(
    stack: Stack, smtp_sink: SmtpSink
) -> None:
    settings = SenderConfig(wait_time_s=1, backoff_s=1, grace_s=5.0, metrics_port=0)
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    async with (
        SenderService(stack.pool, settings, provider),
        fault_proxy(stack.url) as (url, faults),
        AsyncClient(url, retry=FAST) as mail,
    ):
        faults.drop_every = 4  # every 4th POST reaches intake but its answer is lost
        slots = asyncio.Semaphore(50)

        async def one(n: int) -> Sent:
            async with slots:
                return await mail.send(email(n))

        sent = await asyncio.gather(*(one(n) for n in range(1000)))
        await smtp_sink.wait_for(1000, within=60)
        await asyncio.sleep(1.0)  # a duplicate would arrive now
    assert faults.done["drop"] >= 250
    ids = [d.mailpool_id for d in smtp_sink.deliveries]
    assert len(ids) == 1000, "no email lost, none twice"
    assert set(ids) == {s.id for s in sent}


async def test_a_batch_of_any_size_is_split_and_answered_in_order(stack: Stack) -> None:
    emails = [email(n, to="bad" if n in (3, 700) else f"r{n}@example.test") for n in range(1100)]
    async with fault_proxy(stack.url) as (url, faults), AsyncClient(url, retry=FAST) as mail:
        faults.plan = ["in_doubt"]  # the first request's answer lost after it was stored
        results = await mail.send_batch(emails)
    assert faults.done["in_doubt"] == 1
    assert faults.done["forwarded"] >= 3  # 3 requests, and again for entries refused for now
    assert [i for i, r in enumerate(results) if not isinstance(r, Sent)] == [3, 700]
    envelopes = await queued(stack, 1098)
    assert len(envelopes) == 1098
    by_id = {e.id: e for e in envelopes}
    subjects = [by_id[r.id].email.subject for r in results if isinstance(r, Sent)]
    assert subjects == [f"s{n}" for n in range(1100) if n not in (3, 700)]


async def test_ordered_sends_keep_each_group_in_order(stack: Stack) -> None:
    emails = [email(n, group=f"g{n % 3}") for n in range(30)]
    async with AsyncClient(stack.url, retry=FAST) as mail:
        await mail.send_ordered(emails)
    envelopes = await queued(stack, 30)
    for group in ("g0", "g1", "g2"):
        subjects = [e.email.subject for e in envelopes if e.group.endswith(group)]
        assert subjects == [f"s{n}" for n in range(30) if f"g{n % 3}" == group]


async def test_the_blocking_client_and_suppressions(stack: Stack) -> None:
    def use() -> tuple[Sent, list[str], list[str]]:
        with Client(stack.url, retry=FAST) as mail:
            sent = mail.send(email())
            mail.suppress("gone@example.test")
            listed = [s.address for s in mail.suppressions()]
            mail.unsuppress("gone@example.test")
            return sent, listed, [s.address for s in mail.suppressions()]

    sent, listed, after = await asyncio.to_thread(use)
    assert listed == ["gone@example.test"]
    assert after == []
    assert [e.id for e in await queued(stack, 1)] == [sent.id]


async def test_the_models_are_the_servers(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/openapi.json") as r:
        document = await r.json()
    schema = document["components"]["schemas"]["Email"]
    assert set(schema["properties"]) == EMAIL_FIELDS
    attachment = schema["properties"]["attachments"]["items"]["properties"]
    assert {f.name for f in dataclasses.fields(Attachment)} == set(attachment)
    every = email(
        cc="c@example.test", bcc=["b@example.test"], reply_to="h@example.test", html="<p>x</p>",
        headers={"X-A": "1"}, tags={"k": "v"}, group="g", stream="transactional", unsubscribe=False,
        attachments=[Attachment(filename="a.pdf", content=b"%PDF")],
    )  # fmt: skip
    doc = every.to_json()
    assert set(doc) == EMAIL_FIELDS
    assert doc["attachments"] == [
        {"filename": "a.pdf", "content": base64.b64encode(b"%PDF").decode(),
         "content_type": "application/pdf"}
    ]  # fmt: skip


def signed(
    secret: str, payload: dict[str, Any], at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    msg_id = f"evt_{uuid.uuid4().hex}"
    when = __import__("datetime").datetime.fromtimestamp(
        at or time.time(), tz=__import__("datetime").UTC
    )
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return body, {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def test_webhooks_are_verified_and_the_usual_mistakes_named() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 24).decode()
    old = "whsec_" + base64.b64encode(b"o" * 24).decode()
    event = {
        "type": "email.sent",
        "id": "evt_1",
        "created_at": "2026-12-02T00:00:00.000Z",
        "data": {"email_id": "abc", "recipients": [], "attempt": 1},
    }
    body, headers = signed(secret, event)
    got = verify(body, headers, secret)
    assert (got.type, got.email_id, got.webhook_id) == ("email.sent", "abc", headers["webhook-id"])
    assert verify(body, headers, f"{secret} {old}").type == "email.sent"  # during a rotation
    reserialized = json.dumps(json.loads(body), indent=1).encode()
    with pytest.raises(InvalidWebhook, match="re-serialized"):
        verify(json.dumps(json.loads(body)).encode(), headers, secret)
    with pytest.raises(InvalidWebhook, match="secret"):
        verify(body, headers, old)
    with pytest.raises(InvalidWebhook, match="old"):
        verify(*signed(secret, event, at=time.time() - 3600), secret)
    with pytest.raises(InvalidWebhook, match="missing header"):
        verify(reserialized, {}, secret)
