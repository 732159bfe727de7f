"""The sender against moto's SQS server and a loopback SMTP server."""

import asyncio
import contextlib
import dataclasses
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from core.envelope import Envelope
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import REASON_ATTRIBUTE, QueuePool
from sender.config import SenderConfig
from sender.delivery import retry_delay
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from tests.support.answers import MALFORMED, answer_proxy
from tests.support.enqueue import enqueue
from tests.support.queues import count, drain
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import until

FAST = SenderConfig(wait_time_s=1, backoff_s=1, grace_s=5.0, concurrency=16, metrics_port=0)


def email(**fields: Any) -> dict[str, Any]:
    return {"from": "ana@example.test", "to": "bob@example.test", "subject": "s", "text": "t"} | (
        fields
    )


@contextlib.asynccontextmanager
async def sender(
    config: PoolConfig, port: int, settings: SenderConfig = FAST
) -> AsyncIterator[SenderService]:
    async with SenderService(config, settings, SmtpProvider(SmtpConfig(port=port))) as service:
        yield service


async def nothing_queued(config: PoolConfig) -> bool:
    return await count(config) == 0


def sample(service: SenderService, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def test_an_enqueued_email_is_delivered_once_with_its_headers(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    [message_id] = await enqueue(
        provisioned,
        [email(**{"from": "Ana Díaz <ana@example.test>", "cc": "c@example.test",
                  "bcc": "b@example.test", "subject": "Grüße", "html": "<p>t</p>"})],
    )  # fmt: skip
    async with sender(provisioned, smtp_sink.port) as service:
        [delivery] = await smtp_sink.wait_for(1)
        await asyncio.sleep(1.5)  # room for a duplicate to show up
        assert sample(service, "mailpool_messages_processed_total", shard="0",
                      outcome="delivered") + sample(
            service, "mailpool_messages_processed_total", shard="1", outcome="delivered"
        ) == 1  # fmt: skip
        assert sample(service, "mailpool_end_to_end_duration_seconds_count",
                      stream="transactional") == 1  # fmt: skip
    assert len(smtp_sink.deliveries) == 1
    assert delivery.mailpool_id == message_id
    assert delivery.mail_from == "ana@example.test"
    assert sorted(delivery.rcpt_tos) == ["b@example.test", "bob@example.test", "c@example.test"]
    assert str(delivery.message["From"]) == "Ana Díaz <ana@example.test>"
    assert str(delivery.message["Subject"]) == "Grüße"
    assert delivery.message["Bcc"] is None
    assert delivery.message.get_content_type() == "multipart/alternative"
    assert await count(provisioned) == 0


async def test_group_order_holds_across_many_groups_and_shards(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    groups = [f"group-{g}" for g in range(8)]
    order = [(g, i) for i in range(5) for g in groups]
    ids = await enqueue(
        provisioned, [email(text=f"{g}:{i}") for g, i in order], group=[g for g, _ in order]
    )
    expected: dict[str, list[str]] = {g: [] for g in groups}
    for (g, _), message_id in zip(order, ids, strict=True):
        expected[g].append(message_id)
    assert {shard for shard in range(provisioned.shards)} == {
        QueuePool(provisioned, PoolMetrics(process_registry())).shard_of(g) for g in groups
    }
    async with sender(provisioned, smtp_sink.port):
        deliveries = await smtp_sink.wait_for(40)
    delivered: dict[str, list[str]] = {g: [] for g in groups}
    for d in deliveries:
        group = d.message.get_content().strip().split(":")[0]
        delivered[group].append(d.mailpool_id)
    assert delivered == expected


async def test_a_transient_smtp_failure_is_retried_and_delivered_in_order(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    ids = await enqueue(provisioned, [email(text=f"m{i}") for i in range(3)], group="g")
    smtp_sink.handler.data_failures = 1  # the first DATA gets 451
    async with sender(provisioned, smtp_sink.port) as service:
        deliveries = await smtp_sink.wait_for(3)
        shard = str(QueuePool(provisioned, PoolMetrics(process_registry())).shard_of("g"))
        assert sample(service, "mailpool_messages_processed_total", shard=shard,
                      outcome="retried") == 1  # fmt: skip
        assert sample(service, "mailpool_messages_processed_total", shard=shard,
                      outcome="released") == 2  # fmt: skip
    assert [d.mailpool_id for d in deliveries] == ids


async def test_smtp_down_then_up_delivers_after_backoff(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    [message_id] = await enqueue(provisioned, [email()])
    async with sender(provisioned, dead_port) as service:
        await until(
            lambda: any(
                sample(
                    service, "mailpool_messages_processed_total", shard=str(s), outcome="retried"
                )
                for s in range(provisioned.shards)
            )
        )
    async with sender(provisioned, smtp_sink.port):
        [delivery] = await smtp_sink.wait_for(1)
    assert delivery.mailpool_id == message_id


async def test_a_permanent_refusal_goes_to_the_dlq_with_its_reason(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    smtp_sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 <gone@example.test> unknown"
    [message_id] = await enqueue(provisioned, [email(to="gone@example.test")])
    [later] = await enqueue(provisioned, [email()])
    async with sender(provisioned, smtp_sink.port):
        [delivery] = await smtp_sink.wait_for(1)
        await until(lambda: nothing_queued(provisioned))
    assert delivery.mailpool_id == later
    [dead] = await drain(provisioned, dlq=True)
    assert Envelope.decode(dead.body).id == message_id
    assert dead.attributes[REASON_ATTRIBUTE] == "smtp_550_all_recipients"


async def test_a_partly_refused_email_counts_as_delivered_and_is_not_resent(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    smtp_sink.handler.rcpt_replies["gone@example.test"] = "550 5.1.1 unknown"
    await enqueue(provisioned, [email(to=["gone@example.test", "bob@example.test"])])
    async with sender(provisioned, smtp_sink.port):
        [delivery] = await smtp_sink.wait_for(1)
        await asyncio.sleep(1.5)
    assert delivery.rcpt_tos == ["bob@example.test"]
    assert len(smtp_sink.deliveries) == 1
    assert await count(provisioned) == 0
    assert await count(provisioned, dlq=True) == 0


async def test_a_poison_message_goes_to_the_dlq_and_the_loop_lives_on(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    async with QueuePool(provisioned, PoolMetrics(process_registry())) as pool:
        await pool.send(Outgoing(body="not an envelope", group="g", dedup_id="poison"))
    [good] = await enqueue(provisioned, [email()], group="g")
    async with sender(provisioned, smtp_sink.port):
        [delivery] = await smtp_sink.wait_for(1)
    assert delivery.mailpool_id == good
    [dead] = await drain(provisioned, dlq=True)
    assert dead.body == "not an envelope"
    assert dead.attributes[REASON_ATTRIBUTE] == "undecodable_envelope"


async def test_a_slow_send_keeps_its_visibility_and_is_delivered_once(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    config = dataclasses.replace(provisioned, visibility_timeout_s=2)
    smtp_sink.handler.delay_s = 4.0
    [message_id] = await enqueue(config, [email()])
    async with sender(config, smtp_sink.port) as service:
        await smtp_sink.wait_for(1)
        smtp_sink.handler.delay_s = 0.0
        await asyncio.sleep(3)  # past the original timeout: a lapse would redeliver now
        extended = sum(
            sample(service, "mailpool_sqs_calls_total", action="ChangeMessageVisibilityBatch",
                   shard=str(s), outcome="ok")
            for s in range(config.shards)
        )  # fmt: skip
    assert [d.mailpool_id for d in smtp_sink.deliveries] == [message_id]
    assert extended >= 1


async def test_a_delivered_message_frees_its_slot_before_its_batched_delete_lands(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    # One slot, and deletes that linger far longer than a send: the second and third emails
    # go out while the first one's delete is still waiting for its batch.
    lingering = dataclasses.replace(provisioned, settle_linger_s=5.0)
    await enqueue(provisioned, [email(text=str(n)) for n in range(3)])
    one_slot = dataclasses.replace(FAST, concurrency=1, grace_s=10.0)
    async with sender(lingering, smtp_sink.port, one_slot) as service:
        await smtp_sink.wait_for(3)
        assert await count(provisioned) == 3  # delivered, none deleted yet
        # Waiting for a delete is not work: the in-flight gauge counts none of them.
        await until(lambda: sample(service, "mailpool_messages_in_flight") == 0)
    # Stopping flushes the lingering deletes: nothing is redelivered.
    assert await count(provisioned) == 0
    assert len(smtp_sink.deliveries) == 3


async def test_stop_finishes_sends_under_way_and_releases_the_rest_at_once(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    ids = await enqueue(provisioned, [email(text=f"m{i}") for i in range(5)], group="g")
    smtp_sink.handler.delay_s = 0.5
    async with sender(provisioned, smtp_sink.port):
        await smtp_sink.wait_for(1)
    # The send under way finished within grace; the unstarted were released, not left
    # invisible for the 30 s visibility timeout, so a new sender gets them right away.
    first_run = len(smtp_sink.deliveries)
    assert 1 <= first_run < 5
    smtp_sink.handler.delay_s = 0.0
    async with sender(provisioned, smtp_sink.port):
        await smtp_sink.wait_for(5, within=10)
    assert [d.mailpool_id for d in smtp_sink.deliveries] == ids


async def test_sends_cut_off_by_the_grace_period_are_released_and_delivered_later(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    ids = await enqueue(provisioned, [email(text=f"m{i}") for i in range(6)])
    smtp_sink.handler.delay_s = 3.0
    impatient = dataclasses.replace(FAST, grace_s=0.5)
    loop = asyncio.get_running_loop()
    async with sender(provisioned, smtp_sink.port, impatient) as service:
        await until(lambda: sample(service, "mailpool_messages_in_flight") == 6)
        stopping = loop.time()
    assert loop.time() - stopping < 3.0
    smtp_sink.handler.delay_s = 0.0
    async with sender(provisioned, smtp_sink.port):
        await until(lambda: {d.mailpool_id for d in smtp_sink.deliveries} == set(ids), 15)
    assert await count(provisioned) == 0


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_grows_with_receive_count_up_to_its_cap(attempt: int) -> None:
    delay = retry_delay(SenderConfig(backoff_s=5, max_backoff_s=900), attempt)
    ceiling = min(900, 5 * 2 ** (attempt - 1))
    assert round(0.8 * ceiling) <= delay <= ceiling


async def test_provider_throttling_waits_without_spending_receives(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    smtp_sink.handler.data_failures = 2
    smtp_sink.handler.data_reply = "454 4.7.0 Throttling failure: Maximum sending rate exceeded"
    [message_id] = await enqueue(provisioned, [email()])
    async with sender(provisioned, smtp_sink.port) as service:
        [delivery] = await smtp_sink.wait_for(1, within=20)
        shards = [str(s) for s in range(provisioned.shards)]
        retried = sum(
            sample(service, "mailpool_messages_processed_total", shard=s, outcome="retried")
            for s in shards
        )
        received = sum(sample(service, "mailpool_messages_received_total", shard=s) for s in shards)
        delayed = sample(
            service, "mailpool_provider_send_duration_seconds_count", provider="smtp",
            outcome="delayed",
        )  # fmt: skip
    assert delivery.mailpool_id == message_id
    assert (retried, received, delayed) == (0, 1, 2)


async def test_a_sender_that_cannot_delete_holds_what_it_sent_and_takes_nothing_new(
    provisioned: PoolConfig, smtp_sink: SmtpSink, sqs_endpoint: str
) -> None:
    async with answer_proxy(sqs_endpoint) as proxy:
        config = dataclasses.replace(
            provisioned, endpoint_url=proxy.url, visibility_timeout_s=2, settle_deadline_s=1.0
        )
        [first] = await enqueue(provisioned, [email(text="first")])
        proxy.malform("DeleteMessageBatch", MALFORMED["array"])
        async with sender(config, smtp_sink.port) as service:
            await smtp_sink.wait_for(1)
            await until(lambda: sample(service, "mailpool_messages_undeleted") == 1)
            [second] = await enqueue(provisioned, [email(text="second")])
            # Three visibility timeouts: without the hold the first would come back (and be
            # sent again), and without the pause the second would be taken and sent.
            await asyncio.sleep(6)
            assert [d.mailpool_id for d in smtp_sink.deliveries] == [first]
            proxy.heal()
            await smtp_sink.wait_for(2)
            await until(lambda: nothing_queued(provisioned))
            assert sample(service, "mailpool_messages_undeleted") == 0
    assert [d.mailpool_id for d in smtp_sink.deliveries] == [first, second]


async def test_the_sender_s_series_with_known_labels_start_at_zero(
    provisioned: PoolConfig, smtp_sink: SmtpSink
) -> None:
    async with sender(provisioned, smtp_sink.port) as service:
        value = service.registry.get_sample_value
        for shard in ("0", "1"):
            for outcome in ("delivered", "retried", "dead_lettered", "released", "failed"):
                labels = {"shard": shard, "outcome": outcome}
                assert value("mailpool_messages_processed_total", labels) == 0
            assert value("mailpool_receive_errors_total", {"shard": shard}) == 0
        for outcome in ("delivered", "transient", "permanent", "error", "delayed"):
            labels = {"provider": "smtp", "outcome": outcome}
            assert value("mailpool_provider_send_duration_seconds_count", labels) == 0
        assert value("mailpool_messages_undeleted") == 0
