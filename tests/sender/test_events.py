"""Every outcome becomes an event; every accepted email ends in exactly one terminal event.

Each test runs through both faces of the delivery code: the sender's receive loops, and
the Lambda worker invoked by a local event source with events built as Lambda builds them.
"""

import dataclasses
import time
from typing import Any

from core.events import Event
from core.sealing import Keyring, new_key
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.dlq import list_dead_letters
from pool.pool import EVENTS, QueuePool
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from tests.support.enqueue import enqueue
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import until
from tests.support.workers import delivering

FAST = SenderConfig(wait_time_s=1, backoff_s=1, max_backoff_s=1, grace_s=5.0, concurrency=8,
                    metrics_port=0)  # fmt: skip


def email(**fields: Any) -> dict[str, Any]:
    return {"from": "ana@example.test", "to": "bob@example.test", "text": "t"} | fields


async def drain_events(config: PoolConfig, keyring: Keyring | None = None) -> list[Event]:
    """Everything on the events queue, taken off it."""
    found: list[Event] = []
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        while batch := await pool.receive(EVENTS, max_messages=10, wait_s=0, visibility_s=30):
            for message in batch:
                found.append(Event.decode(message.body, keyring))
                await pool.delete(message)
    return found


async def run_sender(
    config: PoolConfig, sink: SmtpSink, done: Any, worker: str = "sender", **kw: Any
) -> None:
    provider = SmtpProvider(SmtpConfig(port=sink.port))
    async with delivering(worker, config, FAST, provider, **kw):
        await until(done, 30)


async def test_a_partly_refused_email_is_sent_for_some_and_bounced_for_the_others(
    provisioned: PoolConfig, smtp_sink: SmtpSink, worker: str
) -> None:
    smtp_sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 no such user"
    [email_id] = await enqueue(
        provisioned, [email(to=["bob@example.test", "gone@example.test"], tags={"k": "v"})]
    )
    await run_sender(provisioned, smtp_sink, lambda: len(smtp_sink.deliveries) == 1, worker)
    events = {e.type: e for e in await drain_events(provisioned)}
    assert set(events) == {"email.sent", "email.bounced"}
    sent, bounced = events["email.sent"], events["email.bounced"]
    assert (sent.email_id, sent.terminal, sent.tags) == (email_id, True, {"k": "v"})
    assert [(r.position, r.address) for r in sent.recipients] == [(0, "bob@example.test")]
    assert not bounced.terminal
    assert [(r.position, r.code, r.enhanced) for r in bounced.recipients] == [(1, 550, "5.1.1")]


async def test_an_email_refused_for_everyone_ends_bounced_and_in_the_dlq(
    provisioned: PoolConfig, smtp_sink: SmtpSink, worker: str
) -> None:
    smtp_sink.handler.rcpt_replies["bob@example.test"] = "550 5.1.1 no such user"
    [email_id] = await enqueue(provisioned, [email()])
    async with SqsClient.from_config(provisioned) as client:

        async def dead() -> bool:
            return len(await list_dead_letters(client, provisioned)) == 1

        await run_sender(provisioned, smtp_sink, dead, worker)
    [bounced] = await drain_events(provisioned)
    assert (bounced.type, bounced.email_id, bounced.terminal) == ("email.bounced", email_id, True)
    assert bounced.reason == "smtp_550_all_recipients"
    assert [(r.code, r.enhanced) for r in bounced.recipients] == [(550, "5.1.1")]


async def test_a_transient_failure_is_deferred_then_sent(
    provisioned: PoolConfig, smtp_sink: SmtpSink, worker: str
) -> None:
    smtp_sink.handler.data_failures = 1
    [email_id] = await enqueue(provisioned, [email()])
    await run_sender(provisioned, smtp_sink, lambda: len(smtp_sink.deliveries) == 1, worker)
    deferred, sent = await drain_events(provisioned)
    assert (deferred.type, deferred.attempt, deferred.terminal) == ("email.deferred", 1, False)
    assert deferred.next_attempt_at is not None
    assert deferred.next_attempt_at > time.time() - 10
    assert (sent.type, sent.attempt, sent.email_id) == ("email.sent", 2, email_id)


async def test_when_receives_run_out_the_sender_settles_it_failed_not_sqs_silently(
    provisioned: PoolConfig, smtp_sink: SmtpSink, worker: str
) -> None:
    config = dataclasses.replace(provisioned, max_receive_count=2)
    smtp_sink.handler.data_failures = 100
    [email_id] = await enqueue(config, [email()])
    async with SqsClient.from_config(config) as client:

        async def dead() -> bool:
            return len(await list_dead_letters(client, config)) == 1

        await run_sender(config, smtp_sink, dead, worker)
        [letter] = await list_dead_letters(client, config)
    assert letter.reason == "retries_exhausted"
    events = await drain_events(config)
    assert [(e.type, e.attempt) for e in events] == [("email.deferred", 1), ("email.failed", 2)]
    assert events[-1].reason == "retries_exhausted"
    assert events[-1].terminal
    assert events[-1].email_id == email_id


async def test_sealed_events_carry_no_address_in_the_queue(
    provisioned: PoolConfig, smtp_sink: SmtpSink, worker: str
) -> None:
    keyring = Keyring.from_env({"MAILPOOL_ENCRYPTION_KEYS": new_key("k1")})
    assert keyring is not None
    await enqueue(provisioned, [email()])
    await run_sender(provisioned, smtp_sink, lambda: len(smtp_sink.deliveries) == 1, worker,
                     keyring=keyring)  # fmt: skip
    async with QueuePool(provisioned, PoolMetrics(process_registry())) as pool:
        [raw] = await pool.receive(EVENTS, max_messages=10, wait_s=1, visibility_s=0)
    assert "bob@example.test" not in raw.body
    assert Event.decode(raw.body, keyring).recipients[0].address == "bob@example.test"


def test_an_outcome_repeated_after_a_crash_has_the_same_id() -> None:
    sent = Event(type="email.sent", email_id="e1", recipients=(), attempt=1)
    again = dataclasses.replace(sent, attempt=2, created_at=sent.created_at + 60)
    assert sent.id == again.id
    deferred = Event(type="email.deferred", email_id="e1", recipients=(), attempt=1)
    assert deferred.id != dataclasses.replace(deferred, attempt=2).id
