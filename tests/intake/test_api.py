"""The intake API over a real socket, backed by moto's SQS server."""

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from core.envelope import Envelope, message_group
from intake.app import create_app
from intake.config import IntakeConfig
from metrics.intake import IntakeMetrics
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.pool import QueuePool
from pool.routing import shard_for
from tests.support.proxy import FaultProxy
from tests.support.queues import count, drain

EMAIL: dict[str, Any] = {
    "from": "Ana Díaz <ana@example.test>",
    "to": "bob@example.test",
    "subject": "Hello",
    "text": "Hi Bob",
}


async def start_client(
    pool_config: PoolConfig, intake_config: IntakeConfig | None = None
) -> TestClient[Any, Any]:
    registry = CollectorRegistry()
    app = create_app(
        intake_config or IntakeConfig(),
        QueuePool(pool_config, PoolMetrics(registry)),
        IntakeMetrics(registry),
        registry,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def api(provisioned: PoolConfig) -> AsyncIterator[TestClient[Any, Any]]:
    client = await start_client(provisioned)
    yield client
    await client.close()


async def post(api: TestClient[Any, Any], path: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json", **headers}
    response = await api.post(path, data=data, headers=headers)
    return response.status, await response.json(), response.headers


async def test_accepted_email_is_in_sqs_when_202_arrives(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    status, body, _ = await post(api, "/v1/emails", EMAIL)
    assert status == 202
    [queued] = await drain(provisioned)
    envelope = Envelope.decode(queued.body)
    assert envelope.id == body["id"]
    assert envelope.email.sender.name == "Ana Díaz"
    assert queued.group == body["id"]  # no group given: the email is its own group


async def test_a_named_group_routes_to_its_shard(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    for _ in range(3):
        status, _, _ = await post(api, "/v1/emails", {**EMAIL, "group": "tenant-7"})
        assert status == 202
    queued = await drain(provisioned)
    # SQS's MessageGroupId is a digest of the group: a group named after a person never
    # shows in queue metadata. The envelope keeps the group as given.
    assert {m.group for m in queued} == {message_group("tenant-7", "unused")}
    assert "tenant-7" not in {m.group for m in queued}
    assert {Envelope.decode(m.body).group for m in queued} == {"tenant-7"}
    assert {m.shard for m in queued} == {shard_for(message_group("tenant-7", ""), 2)}


async def test_idempotency_key_returns_the_same_id_and_enqueues_once(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    first = await post(api, "/v1/emails", EMAIL, **{"Idempotency-Key": "order-42"})
    again = await post(api, "/v1/emails", EMAIL, **{"Idempotency-Key": "order-42"})
    other = await post(api, "/v1/emails", EMAIL, **{"Idempotency-Key": "order-43"})
    assert first[0] == again[0] == other[0] == 202
    assert first[1]["id"] == again[1]["id"] != other[1]["id"]
    assert sorted(Envelope.decode(m.body).id for m in await drain(provisioned)) == sorted(
        [first[1]["id"], other[1]["id"]]
    )


BAD_REQUESTS: list[tuple[bytes | Any, dict[str, str], int, str, str | None]] = [
    (b"{not json", {}, 400, "invalid_json", None),
    (b"", {}, 400, "invalid_json", None),
    ([1, 2], {}, 422, "invalid_type", None),
    ({**EMAIL, "to": 5}, {}, 422, "invalid_type", "to"),
    ({**EMAIL, "to": "not-an-address"}, {}, 422, "invalid_address", "to"),
    ({**EMAIL, "from": "Eve <eve@example.test>\r\nBcc: x@example.test"}, {}, 422,
     "invalid_address", "from"),
    ({**EMAIL, "subject": "a\r\nBcc: x@example.test"}, {}, 422, "header_injection", "subject"),
    ({**EMAIL, "headers": {"X-A": "1\n2"}}, {}, 422, "header_injection", "headers.X-A"),
    ({**EMAIL, "group": "has space"}, {}, 422, "invalid_group", "group"),
    ({**EMAIL, "colour": "red"}, {}, 422, "unknown_field", "colour"),
    ({**EMAIL, "text": "x" * 1_040_000}, {}, 413, "message_too_large", None),
    (EMAIL, {"Idempotency-Key": "has space"}, 400, "invalid_idempotency_key", "Idempotency-Key"),
    # SES reads X-SES-* headers of a raw message as instructions (configuration set, ARNs).
    ({**EMAIL, "headers": {"X-SES-CONFIGURATION-SET": "bulk"}}, {}, 422, "reserved_header",
     "headers.X-SES-CONFIGURATION-SET"),
    ({**EMAIL, "headers": {"x-ses-source-arn": "arn:x"}}, {}, 422, "reserved_header",
     "headers.x-ses-source-arn"),
    # RFC 2045: no NUL in 7bit text; the producer is told instead of a relay choking on it.
    ({**EMAIL, "text": "a\u0000b"}, {}, 422, "invalid_character", "text"),
    ({**EMAIL, "html": "<p>\u0000</p>"}, {}, 422, "invalid_character", "html"),
    # Only JSON: a page on another site can send these without a preflight (CSRF).
    (EMAIL, {"Content-Type": "text/plain"}, 415, "unsupported_media_type", "Content-Type"),
    (EMAIL, {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type", "Content-Type"),
    (EMAIL, {"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type",
     "Content-Type"),
    (EMAIL, {"Content-Type": ""}, 415, "unsupported_media_type", "Content-Type"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "headers", "status", "code", "field"), BAD_REQUESTS)
async def test_bad_input_gets_its_status_and_nothing_is_enqueued(
    api: TestClient[Any, Any],
    provisioned: PoolConfig,
    body: Any,
    headers: dict[str, str],
    status: int,
    code: str,
    field: str | None,
) -> None:
    got_status, got, _ = await post(api, "/v1/emails", body, **headers)
    assert got_status == status
    assert got == {"error": {"code": code, "message": got["error"]["message"], "field": field}}
    assert await count(provisioned) == 0


async def test_bodies_over_the_request_cap_get_413_before_parsing(
    provisioned: PoolConfig,
) -> None:
    client = await start_client(provisioned, IntakeConfig(max_request_bytes=1024))
    try:
        status, body, _ = await post(client, "/v1/emails", {**EMAIL, "text": "x" * 2000})
    finally:
        await client.close()
    assert status == 413
    assert body["error"]["code"] == "request_too_large"


async def test_deeply_nested_json_is_refused_as_malformed(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    for path in ("/v1/emails", "/v1/emails/batch"):
        status, body, _ = await post(api, path, deep)
        assert (status, body["error"]["code"]) == (400, "invalid_json")
    assert await count(provisioned) == 0


async def test_unknown_routes_and_methods_answer_json(api: TestClient[Any, Any]) -> None:
    response = await api.get("/nope")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
    response = await api.get("/v1/emails")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"


async def test_batch_accepts_each_entry_on_its_own_in_order(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    batch = [
        {**EMAIL, "group": "g1", "text": "one"},
        {**EMAIL, "to": "bad"},
        {**EMAIL, "group": "g1", "text": "two"},
        {**EMAIL, "group": "g2", "text": "three"},
    ]
    status, body, _ = await post(api, "/v1/emails/batch", batch)
    assert status == 202
    results = body["results"]
    assert [sorted(r) for r in results] == [["id"], ["error"], ["id"], ["id"]]
    assert results[1] == {
        "error": {
            "code": "invalid_address",
            "message": results[1]["error"]["message"],
            "field": "[1].to",
            "status": 422,
        }
    }
    queued = await drain(provisioned)
    g1 = [Envelope.decode(m.body).email.text for m in queued if m.group == message_group("g1", "")]
    assert g1 == ["one", "two"]
    assert len(queued) == 3


async def test_batch_limits(api: TestClient[Any, Any], provisioned: PoolConfig) -> None:
    assert (await post(api, "/v1/emails/batch", [EMAIL] * 501))[0] == 413
    assert (await post(api, "/v1/emails/batch", []))[0] == 422
    assert (await post(api, "/v1/emails/batch", EMAIL))[0] == 422
    status, body, _ = await post(api, "/v1/emails/batch", [{**EMAIL, "to": "bad"}])
    assert status == 422
    assert body["results"][0]["error"]["field"] == "[0].to"
    assert await count(provisioned) == 0


async def test_batch_idempotency_keys_each_entry(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    key = {"Idempotency-Key": "batch-1"}
    first = await post(api, "/v1/emails/batch", [EMAIL, EMAIL], **key)
    again = await post(api, "/v1/emails/batch", [EMAIL, EMAIL], **key)
    assert first[1] == again[1]
    assert len({r["id"] for r in first[1]["results"]}) == 2
    assert len(await drain(provisioned)) == 2


async def test_health_readiness_and_metrics(api: TestClient[Any, Any]) -> None:
    assert (await api.get("/healthz")).status == 200
    ready = await api.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["status"] == "ready"
    await post(api, "/v1/emails", EMAIL)
    text = await (await api.get("/metrics")).text()
    assert 'mailpool_http_requests_total{route="/v1/emails",status="202"} 1.0' in text
    assert "mailpool_accept_duration_seconds_count 1.0" in text
    assert 'mailpool_messages_enqueued_total{shard="' in text


@contextlib.asynccontextmanager
async def behind_proxy(
    config: PoolConfig, sqs_endpoint: str
) -> AsyncIterator[tuple[FaultProxy, TestClient[Any, Any]]]:
    """An intake client whose pool reaches SQS through a fault proxy (1 s send deadline)."""
    host, port = sqs_endpoint.removeprefix("http://").split(":")
    async with FaultProxy(host, int(port)) as proxy:
        proxied = dataclasses.replace(config, endpoint_url=proxy.url, send_deadline_s=1.0)
        client = await start_client(proxied)
        try:
            yield proxy, client
        finally:
            await client.close()


async def test_sqs_down_answers_503_with_retry_after_and_readiness_fails(
    provisioned: PoolConfig, sqs_endpoint: str
) -> None:
    async with behind_proxy(provisioned, sqs_endpoint) as (proxy, client):
        # The request went out and no answer came back: whether SQS took it is unknown.
        for mode in ("reset", "blackhole"):
            proxy.set_mode(mode)  # type: ignore[arg-type]
            status, body, headers = await post(client, "/v1/emails", EMAIL)
            assert status == 503
            assert body["error"]["code"] == "in_doubt"
            assert headers["Retry-After"] == "1"
            status, body, _ = await post(client, "/v1/emails/batch", [EMAIL, EMAIL])
            assert status == 503
            assert [r["error"]["status"] for r in body["results"]] == [503, 503]
            assert (await client.get("/readyz")).status == 503
        proxy.set_mode("pass")
        assert (await client.get("/readyz")).status == 200
        status, _, _ = await post(client, "/v1/emails", EMAIL)
        assert status == 202
    # Nothing half-accepted: only the email that got its 202 is queued.
    assert await count(provisioned) == 1


async def test_sqs_refusing_connections_answers_503_not_stored(
    provisioned: PoolConfig, sqs_endpoint: str
) -> None:
    async with behind_proxy(provisioned, sqs_endpoint) as (proxy, client):
        proxy.refuse()
        status, body, headers = await post(client, "/v1/emails", EMAIL)
    assert status == 503
    assert body["error"]["code"] == "unavailable"  # never sent: certainly not stored
    assert headers["Retry-After"] == "1"


async def test_concurrent_requests_share_batch_calls(provisioned: PoolConfig) -> None:
    config = dataclasses.replace(provisioned, shards=1, send_linger_s=0.02)
    client = await start_client(config)
    try:
        results = await asyncio.gather(*(post(client, "/v1/emails", EMAIL) for _ in range(20)))
        metrics = await (await client.get("/metrics")).text()
    finally:
        await client.close()
    assert [r[0] for r in results] == [202] * 20
    calls = [
        line for line in metrics.splitlines()
        if line.startswith('mailpool_sqs_batch_entries_count{action="SendMessageBatch"}')
    ]  # fmt: skip
    assert len(calls) == 1
    assert float(calls[0].split()[-1]) < 20


async def test_counters_with_known_labels_start_at_zero_and_bad_json_is_a_refusal(
    api: TestClient[Any, Any],
) -> None:
    before = await (await api.get("/metrics")).text()
    for series in (
        'mailpool_emails_refused_total{reason="overloaded"} 0.0',
        'mailpool_emails_refused_total{reason="invalid_json"} 0.0',
        'mailpool_sqs_calls_total{action="SendMessageBatch",outcome="throttled",shard="1"} 0.0',
        'mailpool_sqs_entry_failures_total{action="DeleteMessageBatch",outcome="unavailable",'
        'shard="0"} 0.0',
        'mailpool_messages_enqueued_total{shard="1"} 0.0',
    ):
        assert series in before
    status, body, _ = await post(api, "/v1/emails", b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    after = await (await api.get("/metrics")).text()
    assert 'mailpool_emails_refused_total{reason="invalid_json"} 1.0' in after
