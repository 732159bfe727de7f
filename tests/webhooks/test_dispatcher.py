"""The dispatcher on moto's SQS: fan-out, signatures, per-endpoint retries, 410, DLQ, replay."""

import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import jsonschema
from jsonschema.validators import Draft202012Validator

from core.events import Event, Recipient
from intake.config import IntakeConfig
from intake.openapi import openapi_document
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool
from pool.sqs import SqsClient
from tests.support.waiting import until
from tests.support.webhook_sink import WebhookSink
from webhooks.config import WebhooksConfig
from webhooks.endpoints import Endpoint
from webhooks.redrive import redrive_events
from webhooks.service import WebhooksService
from webhooks.signing import new_secret, secret_key

SECRET = new_secret()
FAST = WebhooksConfig(wait_time_s=1, attempt_timeout_s=0.5, schedule_s=(1, 1, 1),
                      breaker_threshold=3, breaker_cooldown_s=1.0, metrics_port=0)  # fmt: skip


def endpoint(name: str, sink: WebhookSink, **filters: frozenset[str]) -> Endpoint:
    return Endpoint(name=name, url=sink.url, key=secret_key(SECRET), allow_http=True,
                    internal=True, **filters)  # fmt: skip


def event(kind: str = "email.sent", email_id: str | None = None) -> Event:
    return Event(type=kind, email_id=email_id or uuid.uuid4().hex, attempt=1, provider="smtp",
                 recipients=(Recipient(0, "bob@example.test", 250, "2.0.0"),),
                 tags={"kind": "welcome"}, terminal=kind == "email.sent")  # fmt: skip


async def publish(config: PoolConfig, events: Sequence[Event]) -> None:
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        await pool.publish([Outgoing(body=e.encode()) for e in events])


@contextlib.asynccontextmanager
async def dispatching(
    config: PoolConfig, endpoints: list[Endpoint], settings: WebhooksConfig = FAST
) -> AsyncIterator[WebhooksService]:
    async with WebhooksService(config, settings, endpoints) as service:
        yield service


def sample(service: WebhooksService, name: str, **labels: str) -> float:
    return service.registry.get_sample_value(name, labels) or 0.0


async def test_each_endpoint_gets_the_events_it_wants_signed_and_with_their_ids(
    provisioned: PoolConfig,
) -> None:
    sent, bounced = event("email.sent"), event("email.bounced")
    async with WebhookSink(SECRET) as every, WebhookSink(SECRET) as bounces:
        await publish(provisioned, [sent, bounced])
        hooks = [endpoint("every", every),
                 endpoint("bounces", bounces, events=frozenset({"email.bounced"}))]  # fmt: skip
        async with dispatching(provisioned, hooks):
            await until(lambda: len(every.deliveries) == 2 and len(bounces.deliveries) == 1)
    assert sorted(every.ids()) == sorted([sent.id, bounced.id])
    assert bounces.ids() == [bounced.id]
    assert every.unverified == 0
    [doc] = [d.event for d in every.deliveries if d.webhook_id == sent.id]
    assert doc["type"] == "email.sent"
    # As the OpenAPI document's webhooks section describes it.
    api = openapi_document(IntakeConfig(), provisioned)
    schema = {"$ref": "#/components/schemas/Event", "components": api["components"]}
    for delivered in every.deliveries:
        jsonschema.validate(delivered.event, schema, cls=Draft202012Validator)
    assert doc["data"]["tags"] == {"kind": "welcome"}
    assert doc["data"]["recipients"] == [
        {"position": 0, "address": "bob@example.test", "code": 250, "enhanced": "2.0.0"}
    ]


async def test_a_failing_endpoint_retries_on_its_own_and_a_dead_one_slows_no_one(
    provisioned: PoolConfig,
) -> None:
    events = [event() for _ in range(5)]
    async with (
        WebhookSink(SECRET) as live,
        WebhookSink(SECRET, status=500) as flaky,
        WebhookSink(SECRET, delay_s=5) as dead,  # past the 0.5 s attempt timeout
    ):
        hooks = [endpoint("live", live), endpoint("flaky", flaky), endpoint("dead", dead)]
        async with dispatching(provisioned, hooks) as service:
            started = time.monotonic()
            await publish(provisioned, events)
            await until(lambda: len(live.deliveries) == 5, 10)
            live_took = time.monotonic() - started
            await until(lambda: len(flaky.requests) >= 5, 10)  # each failed once at least
            flaky.status = 204
            await until(lambda: set(flaky.ids()) == {e.id for e in events}, 20)

            def all_given_up() -> bool:
                return sample(service, "mailpool_webhook_dead_lettered_total", endpoint="dead") == 5

            await until(all_given_up, 30)
            assert sample(service, "mailpool_webhook_attempts_total", endpoint="dead",
                          outcome="timeout") >= 3  # fmt: skip
        assert live_took < 5  # never waited for the dead endpoint's timeouts
        assert sorted(live.ids()) == sorted(e.id for e in events)  # once each
        # Given up on after the schedule, replayed from the DLQ once it is back.
        dead.delay_s = 0
        async with SqsClient.from_config(provisioned) as client:
            assert await redrive_events(client, provisioned) == 5
        async with dispatching(provisioned, hooks):
            await until(lambda: set(dead.ids()) == {e.id for e in events}, 20)
    assert sorted(live.ids()) == sorted(e.id for e in events)  # the replay went to dead alone


async def test_410_gone_disables_the_endpoint_loudly(provisioned: PoolConfig) -> None:
    async with WebhookSink(SECRET, status=410) as gone, WebhookSink(SECRET) as other:
        hooks = [endpoint("gone", gone), endpoint("other", other)]
        async with dispatching(provisioned, hooks) as service:
            await publish(provisioned, [event(), event()])
            await until(lambda: len(other.deliveries) == 2)
            await until(lambda: sample(service, "mailpool_webhook_endpoint_state",
                                       endpoint="gone", state="disabled") == 1)  # fmt: skip
            await publish(provisioned, [event()])
            await until(lambda: len(other.deliveries) == 3)
    assert len(gone.requests) <= 2  # nothing more once it said 410


async def test_a_public_endpoint_never_reaches_an_internal_address(
    provisioned: PoolConfig,
) -> None:
    async with WebhookSink(SECRET) as sink:
        public = dataclasses.replace(endpoint("public", sink), internal=False)
        local_name = dataclasses.replace(public, name="byname", url=sink.url.replace(
            "127.0.0.1", "localhost"))  # fmt: skip
        async with dispatching(provisioned, [public, local_name]) as service:
            await publish(provisioned, [event()])

            def refused_both() -> bool:
                return all(
                    sample(service, "mailpool_webhook_attempts_total", endpoint=name,
                           outcome="refused") >= 1
                    for name in ("public", "byname")
                )  # fmt: skip

            await until(refused_both)
    assert sink.requests == []
