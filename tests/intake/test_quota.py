"""Per-API-key quotas: token buckets, 429 with Retry-After, IETF RateLimit headers."""

import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from intake.app import create_app
from intake.auth import ApiKey, Authenticator, digest
from intake.config import IntakeConfig
from intake.quota import Quotas
from metrics.intake import IntakeMetrics
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.pool import QueuePool
from tests.support.queues import count

EMAIL = {"from": "a@example.test", "to": "b@example.test", "text": "quota"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_burst_then_its_rate() -> None:
    clock = Clock()
    quotas = Quotas(rate=10, burst=20, clock=clock)
    assert quotas.take("a", 15).admitted == 15
    refused = quotas.take("a", 10)
    assert refused.admitted == 5
    assert refused.retry_after_s == 1
    assert refused.headers == {
        "RateLimit-Policy": '"emails";q=20;w=2',
        "RateLimit": '"emails";r=0;t=2',
    }
    clock.now += 0.5  # five more tokens
    assert quotas.take("a", 10).admitted == 5
    assert quotas.take("b", 20).admitted == 20  # keys do not share a bucket
    clock.now += 60
    assert quotas.take("a", 100).admitted == 20  # refilled, but never past the burst


def test_no_rate_means_no_quota_and_no_headers() -> None:
    grant = Quotas(rate=0).take("a", 10_000)
    assert grant.admitted == 10_000
    assert grant.headers == {}


async def start(config: PoolConfig, intake: IntakeConfig) -> TestClient[Any, Any]:
    registry = CollectorRegistry()
    keys = Authenticator([ApiKey("alpha", digest("key-a")), ApiKey("beta", digest("key-b"))])
    app = create_app(
        intake, QueuePool(config, PoolMetrics(registry)), IntakeMetrics(registry), registry, keys
    )
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def test_one_key_over_its_quota_gets_429_and_another_key_is_served(
    provisioned: PoolConfig,
) -> None:
    config = dataclasses.replace(provisioned, shards=1)
    client = await start(config, IntakeConfig(rate_limit=0.5, rate_burst=2))
    alpha = {"Authorization": "Bearer key-a"}
    beta = {"Authorization": "Bearer key-b"}
    try:
        for remaining in (1, 0):
            ok = await client.post("/v1/emails", json=EMAIL, headers=alpha)
            assert ok.status == 202
            assert ok.headers["RateLimit-Policy"] == '"emails";q=2;w=4'
            assert ok.headers["RateLimit"].startswith(f'"emails";r={remaining};t=')
        limited = await client.post("/v1/emails", json=EMAIL, headers=alpha)
        assert limited.status == 429
        assert (await limited.json())["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
        assert limited.headers["RateLimit"].startswith('"emails";r=0;t=')
        # The other producer is not starved; its batch is admitted up to its own burst.
        batch = await client.post("/v1/emails/batch", json=[EMAIL] * 3, headers=beta)
        assert batch.status == 202
        results = (await batch.json())["results"]
        assert ["id" in r for r in results] == [True, True, False]
        assert results[2]["error"] == {
            "code": "rate_limited",
            "message": results[2]["error"]["message"],
            "field": "[2]",
            "status": 429,
        }
        nothing = await client.post("/v1/emails/batch", json=[EMAIL], headers=beta)
        assert nothing.status == 429
        assert "Retry-After" in nothing.headers
        metrics = await (await client.get("/metrics")).text()
        assert 'mailpool_emails_refused_total{reason="rate_limited"} 3.0' in metrics
    finally:
        await client.close()
    assert await count(config) == 4  # only what got a 202 was queued
