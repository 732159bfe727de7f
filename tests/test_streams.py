"""Message streams: an email names its stream, lands on that stream's shards, and carries
the stream into its events; a stream that does not exist is refused, naming the field."""

import asyncio
import dataclasses
from typing import Any

import aiohttp
import pytest

from core.envelope import Envelope
from core.events import Event
from core.settings import SettingError
from intake.config import IntakeConfig, parse_key_streams
from intake.ids import new_id
from intake.service import IntakeService
from intake.validation import parse_email
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.pool import EVENTS, QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from pool.streams import parse
from sender.config import SenderConfig
from sender.providers import make_provider
from sender.providers.ratelimit import StreamRated
from sender.providers.ses import SesConfig, SesProvider
from sender.service import SenderService
from tests.support.enqueue import enqueue
from tests.support.fake_provider import FakeProvider
from tests.support.queues import count
from tests.support.waiting import until

FAST = SenderConfig(wait_time_s=1, metrics_port=0)


async def two_streams(pool_config: PoolConfig) -> PoolConfig:
    """``pool_config`` as transactional:1,bulk:1, its queues made."""
    pool = dataclasses.replace(pool_config, shards=2, streams=parse("transactional:1,bulk:1"))
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    return pool


def email(**fields: Any) -> dict[str, Any]:
    return {"from": "ana@example.test", "to": "bob@example.test", "text": "t"} | fields


async def test_each_email_goes_to_its_streams_shards_and_its_events_say_which(
    pool_config: PoolConfig,
) -> None:
    pool = dataclasses.replace(pool_config, shards=3,
                               streams=parse("transactional:1,bulk:2:1:0.5"))  # fmt: skip
    assert [pool.queue_name(k) for k in range(3)] == [
        f"{pool.prefix}-0.fifo", f"{pool.prefix}-bulk-0.fifo", f"{pool.prefix}-bulk-1.fifo"
    ]  # fmt: skip
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    async with IntakeService(pool, IntakeConfig(port=0)) as intake, aiohttp.ClientSession() as http:
        ids = {}
        for stream in (None, "transactional", "bulk"):
            doc = email() if stream is None else email(stream=stream)
            async with http.post(f"{intake.url}/v1/emails", json=doc) as response:
                assert response.status == 202
                ids[stream] = (await response.json())["id"]
        async with http.post(f"{intake.url}/v1/emails", json=email(stream="news")) as response:
            assert response.status == 422
            error = (await response.json())["error"]
            assert (error["field"], error["code"]) == ("stream", "unknown_stream")
    first = dataclasses.replace(pool, shards=1, streams=())  # transactional's one shard
    assert (await count(first), await count(pool)) == (2, 3)  # and one on bulk's
    provider = FakeProvider()
    async with SenderService(pool, FAST, provider):
        await until(lambda: len(provider.sent) == 3, 20)
    async with QueuePool(pool, PoolMetrics(process_registry())) as queues:
        got = await queues.receive(EVENTS, max_messages=10, wait_s=1, visibility_s=0)
    streams = {e.email_id: e.stream for e in (Event.decode(m.body) for m in got)}
    assert streams == {ids[None]: "transactional", ids["transactional"]: "transactional",
                       ids["bulk"]: "bulk"}  # fmt: skip
    assert Event.decode(got[0].body).document()["data"]["stream"] in ("transactional", "bulk")


async def test_a_sender_dedicated_to_a_stream_takes_nothing_from_the_others(
    pool_config: PoolConfig,
) -> None:
    pool = await two_streams(pool_config)
    await enqueue(pool, [email(stream="bulk"), email()], streams=["bulk", ""])
    provider = FakeProvider()
    bulk_only = dataclasses.replace(FAST, streams=("bulk",))
    async with SenderService(pool, bulk_only, provider):
        await until(lambda: len(provider.sent) == 1, 20)
        await asyncio.sleep(1.5)  # a long poll's time: the transactional one stays queued
    assert [e.stream for e in provider.sent] == ["bulk"]
    first = dataclasses.replace(pool, shards=1, streams=())
    assert await count(first) == 1
    with pytest.raises(SettingError, match="news"):
        SenderService(pool, dataclasses.replace(FAST, streams=("news",)), provider)


async def test_an_api_key_limited_to_bulk_cannot_send_as_transactional(
    pool_config: PoolConfig,
) -> None:
    pool = await two_streams(pool_config)
    config = IntakeConfig(port=0, key_streams=parse_key_streams("default:bulk"))
    async with IntakeService(pool, config) as intake, aiohttp.ClientSession() as http:
        async with http.post(f"{intake.url}/v1/emails", json=email(stream="bulk")) as response:
            assert response.status == 202
        async with http.post(f"{intake.url}/v1/emails", json=email()) as response:
            assert response.status == 403
            error = (await response.json())["error"]
    assert (error["field"], error["code"]) == ("stream", "stream_not_allowed")
    assert "bulk" in error["message"]


async def test_a_keys_quota_on_a_stream_refuses_past_it_and_leaves_the_other_stream_alone(
    pool_config: PoolConfig,
) -> None:
    pool = await two_streams(pool_config)
    config = IntakeConfig(port=0, stream_rate_limits=(("bulk", 2.0),))  # a burst of 2
    batch = [email(stream="bulk", group="news")] * 4 + [email(group="reset")]
    async with IntakeService(pool, config) as intake, aiohttp.ClientSession() as http:
        async with http.post(f"{intake.url}/v1/emails/batch", json=batch) as response:
            assert response.status == 202
            results = (await response.json())["results"]
        async with http.post(f"{intake.url}/v1/emails", json=email(stream="bulk")) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            error = (await response.json())["error"]
    assert ["id" in r for r in results] == [True, True, False, False, True]
    refused = [r["error"] for r in results[2:4]]
    assert [(e["status"], e["code"], e["field"]) for e in refused] == [
        (429, "rate_limited", "[2].stream"), (429, "rate_limited", "[3].stream")
    ]  # fmt: skip
    assert (error["code"], error["field"]) == ("rate_limited", "stream")
    assert "bulk" in error["message"]
    first = dataclasses.replace(pool, shards=1, streams=())
    assert (await count(first), await count(pool)) == (1, 3)  # two bulk, one transactional


async def test_a_bulk_stream_at_its_own_rate_never_holds_up_transactional_sends() -> None:
    provider = FakeProvider()
    rated = StreamRated(provider, {"bulk": 5.0}, "transactional")  # a burst of 5, then 5/s
    bulk = [envelope(stream="bulk") for _ in range(10)]
    transactional = [envelope(stream="transactional") for _ in range(5)]
    await asyncio.gather(*(rated.send(e) for e in bulk + transactional))
    order = [e.stream for e in provider.sent]
    # The transactional sends went while bulk's last five waited for bulk's rate.
    assert order == ["bulk"] * 5 + ["transactional"] * 5 + ["bulk"] * 5


async def test_a_sender_holds_bulk_to_its_stream_rate_and_transactional_goes_meanwhile(
    pool_config: PoolConfig,
) -> None:
    pool = await two_streams(pool_config)
    await enqueue(pool, [email(stream="bulk")] * 16, streams=["bulk"] * 16)
    provider = FakeProvider()
    rated = dataclasses.replace(FAST, stream_rates=(("bulk", 4.0),))  # a burst of 4, then 4/s
    async with SenderService(pool, rated, provider):
        await until(lambda: len(provider.sent) >= 4, 20)
        await enqueue(pool, [email()] * 3, streams=["transactional"] * 3)
        await until(lambda: len(provider.sent) == 19, 20)
    order = [e.stream for e in provider.sent]
    # Bulk's backlog waits at its own rate; the transactional emails enqueued behind it do not.
    assert order.index("transactional") < 15  # not after the whole backlog
    assert order[-1] == "bulk"


async def test_each_stream_sends_through_its_own_ses_configuration_set() -> None:
    config = SesConfig(region="us-east-1", configuration_set="default-set",
                       configuration_sets=(("bulk", "news-set"),))  # fmt: skip
    provider = SesProvider(config)
    provider._client = object()  # type: ignore[assignment]  # nothing is sent: the request is read
    requests: list[dict[str, Any]] = []

    async def call(action: str, **request: Any) -> dict[str, Any]:
        requests.append(request)
        return {}

    provider._call = call  # type: ignore[method-assign]
    for stream in ("bulk", "transactional", ""):
        await provider.send(envelope(stream=stream))
    assert [r["ConfigurationSetName"] for r in requests] == ["news-set", "default-set",
                                                             "default-set"]  # fmt: skip


def test_per_stream_settings_must_name_streams_of_the_pool(pool_config: PoolConfig) -> None:
    pool = dataclasses.replace(pool_config, shards=2, streams=parse("transactional:1,bulk:1"))
    rates = dataclasses.replace(FAST, stream_rates=(("news", 5.0),))
    with pytest.raises(ValueError, match=r"MAILPOOL_STREAM_RATES names no stream.*news"):
        SenderService(pool, rates, FakeProvider())
    sets = {"MAILPOOL_SES_CONFIGURATION_SETS": "bulk:news-set,news:x"}
    with pytest.raises(ValueError, match=r"MAILPOOL_SES_CONFIGURATION_SETS names no stream.*news"):
        make_provider("ses", sets, streams=pool.all_streams)
    limits = IntakeConfig(port=0, stream_rate_limits=(("news", 5.0),))
    with pytest.raises(ValueError, match=r"MAILPOOL_STREAM_RATE_LIMITS names no stream.*news"):
        IntakeService(pool, limits)
    with pytest.raises(ValueError, match="rate must be a positive number"):
        SenderConfig.from_env({"MAILPOOL_STREAM_RATES": "bulk:fast"})
    with pytest.raises(ValueError, match="stream:value"):
        IntakeConfig.from_env({"MAILPOOL_STREAM_RATE_LIMITS": "bulk"})


def envelope(stream: str) -> Envelope:
    return Envelope(id=new_id(), group="g", accepted_at=0.0, email=parse_email(email()),
                    stream=stream)  # fmt: skip
