"""SES feedback (records in the format SES publishes to SNS) becomes mailpool events."""

import dataclasses
import time
from typing import Any

import orjson
import pytest

from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.provision import provision
from pool.sqs import SqsClient
from state import status
from state.config import StateConfig
from state.table import StateTable
from tests.support.waiting import until
from tests.support.webhook_sink import WebhookSink
from webhooks import ses
from webhooks.config import WebhooksConfig
from webhooks.dispatcher import DUE_ATTRIBUTE, ENDPOINT_ATTRIBUTE
from webhooks.endpoints import Endpoint
from webhooks.service import WebhooksService
from webhooks.signing import new_secret, secret_key

SECRET = new_secret()


def record(kind: str, part: dict[str, Any], email_id: str | None = "e-1") -> dict[str, Any]:
    """An SES event record as a configuration set publishes it (documented format)."""
    tags = {"ses:configuration-set": ["mailpool"]}
    if email_id is not None:
        tags["mailpool-id"] = [email_id]
    key = {"Bounce": "bounce", "Complaint": "complaint", "Delivery": "delivery",
           "DeliveryDelay": "deliveryDelay", "Reject": "reject", "Send": "send"}[kind]  # fmt: skip
    return {
        "eventType": kind,
        key: part,
        "mail": {
            "timestamp": "2026-12-01T06:00:00.000Z",
            "source": "ana@example.test",
            "messageId": "0100018c-ses-message-id",
            "destination": ["bob@example.test", "carol@example.test"],
            "tags": tags,
        },
    }


BOUNCE = record("Bounce", {
    "bounceType": "Permanent", "bounceSubType": "General",
    "bouncedRecipients": [{"emailAddress": "carol@example.test", "action": "failed",
                           "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
    "timestamp": "2026-12-01T06:00:01.000Z", "feedbackId": "fb-bounce-1",
})  # fmt: skip
COMPLAINT = record("Complaint", {
    "complainedRecipients": [{"emailAddress": "bob@example.test"}],
    "timestamp": "2026-12-01T06:10:00.000Z", "feedbackId": "fb-complaint-1",
    "complaintFeedbackType": "abuse",
})  # fmt: skip
DELIVERY = record("Delivery", {
    "timestamp": "2026-12-01T06:00:01.500Z", "processingTimeMillis": 500,
    "recipients": ["bob@example.test"], "smtpResponse": "250 2.6.0 Message received",
})  # fmt: skip
DELAY = record("DeliveryDelay", {
    "delayType": "MailboxFull", "timestamp": "2026-12-01T06:20:00.000Z",
    "delayedRecipients": [{"emailAddress": "bob@example.test", "status": "4.2.2",
                           "diagnosticCode": "smtp; 452 4.2.2 mailbox full"}],
})  # fmt: skip
REJECT = record("Reject", {"reason": "Bad content"})


@pytest.mark.parametrize(
    ("doc", "kind", "recipients"),
    [
        (BOUNCE, "email.bounced", [(1, "carol@example.test", 550, "5.1.1")]),
        (COMPLAINT, "email.complained", [(0, "bob@example.test", None, None)]),
        (DELIVERY, "email.delivered", [(0, "bob@example.test", 250, "2.6.0")]),
        (DELAY, "email.delivery_delayed", [(0, "bob@example.test", 452, "4.2.2")]),
        (REJECT, "email.failed", [(0, "bob@example.test", None, None),
                                  (1, "carol@example.test", None, None)]),
    ],
)  # fmt: skip
def test_each_ses_event_becomes_its_mailpool_event(
    doc: dict[str, Any], kind: str, recipients: list[tuple[object, ...]]
) -> None:
    wrapped = {"Type": "Notification", "Message": orjson.dumps(doc).decode()}
    for body in (orjson.dumps(doc), orjson.dumps(wrapped)):  # raw, and as SNS delivers it
        found = ses.feedback(body.decode())
        assert found is not None
        event = ses.to_event(found)
        assert event is not None
        assert (event.type, event.email_id, event.provider, event.terminal) == (
            kind,
            "e-1",
            "ses",
            False,
        )
        assert [(r.position, r.address, r.code, r.enhanced) for r in event.recipients] == recipients


def test_feedback_for_other_emails_or_other_kinds_is_dropped() -> None:
    assert ses.to_event(record("Bounce", BOUNCE["bounce"], email_id=None)) is None
    assert ses.to_event(record("Send", {})) is None
    assert ses.feedback("not json") is None


async def test_feedback_on_the_queue_reaches_the_webhook_endpoint(
    provisioned: PoolConfig,
) -> None:
    config = dataclasses.replace(provisioned, ses_feedback=True)
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
        url = await client.queue_url(config.ses_events_name())
        wrapped = orjson.dumps({"Type": "Notification", "Message": orjson.dumps(BOUNCE).decode()})
        await client.send_batch(url, [Outgoing(body=orjson.dumps(DELIVERY).decode()),
                                      Outgoing(body=wrapped.decode())])  # fmt: skip
    async with WebhookSink(SECRET) as sink:
        hook = Endpoint(name="h", url=sink.url, key=secret_key(SECRET), allow_http=True,
                        internal=True)  # fmt: skip
        settings = WebhooksConfig(wait_time_s=1, metrics_port=0)
        async with WebhooksService(config, settings, [hook]):
            await until(lambda: len(sink.deliveries) == 2, 20)
    assert sorted(e["type"] for e in sink.events("e-1")) == ["email.bounced", "email.delivered"]


async def test_with_the_state_store_feedback_is_recorded_and_junk_is_dead_lettered(
    provisioned: PoolConfig, sqs_endpoint: str
) -> None:
    config = dataclasses.replace(provisioned, ses_feedback=True)
    state = StateConfig(enabled=True, table=f"{config.prefix}-state", endpoint_url=sqs_endpoint,
                        region="us-east-1", secret=b"w" * 32)  # fmt: skip
    async with StateTable(state) as table:
        await table.provision()
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
        feedback = await client.queue_url(config.ses_events_name())
        await client.send_batch(feedback, [Outgoing(body=orjson.dumps(BOUNCE).decode()),
                                           Outgoing(body="not an SES event")])  # fmt: skip
        # An event whose retry is due in an hour: hidden until then, not delivered early.
        events = await client.queue_url(config.events_name())
        later = {DUE_ATTRIBUTE: str(time.time() + 3600), ENDPOINT_ATTRIBUTE: "h"}
        await client.send_batch(events, [Outgoing(body="{}", attributes=later)])
    async with WebhookSink(SECRET) as sink:
        hook = Endpoint(name="h", url=sink.url, key=secret_key(SECRET), allow_http=True,
                        internal=True)  # fmt: skip
        settings = WebhooksConfig(wait_time_s=1, metrics_port=0)
        async with (
            WebhooksService(config, settings, [hook], state=state),
            StateTable(state) as t,
            SqsClient.from_config(config) as client,
        ):
            dlq = await client.queue_url(config.ses_events_dlq_name())

            async def recorded() -> bool:
                return bool((await t.query(status.partition("e-1")))[0])

            async def dead_lettered() -> bool:
                found = await client.attributes(dlq, ["ApproximateNumberOfMessages"])
                return found["ApproximateNumberOfMessages"] == "1"

            await until(recorded, 20)
            await until(dead_lettered, 20)
            await until(lambda: len(sink.deliveries) == 1, 20)  # the bounce, not the later one
            [junk] = await client.receive(dlq, -2, max_messages=10, wait_s=1, visibility_s=30)
            hidden = await client.attributes(events, ["ApproximateNumberOfMessagesNotVisible"])
    assert junk.body == "not an SES event"
    assert hidden["ApproximateNumberOfMessagesNotVisible"] == "1"
