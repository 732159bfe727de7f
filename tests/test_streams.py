"""Message streams: an email names its stream, lands on that stream's shards, and carries
the stream into its events; a stream that does not exist is refused, naming the field."""

import asyncio
import dataclasses
from typing import Any

import aiohttp
import pytest

from core.events import Event
from core.settings import SettingError
from intake.config import IntakeConfig, parse_key_streams
from intake.service import IntakeService
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.pool import EVENTS, QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from pool.streams import parse
from sender.config import SenderConfig
from sender.service import SenderService
from tests.support.enqueue import enqueue
from tests.support.fake_provider import FakeProvider
from tests.support.queues import count
from tests.support.waiting import until

FAST = SenderConfig(wait_time_s=1, metrics_port=0)


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
    pool = dataclasses.replace(pool_config, shards=2, streams=parse("transactional:1,bulk:1"))
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
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
    pool = dataclasses.replace(pool_config, shards=2, streams=parse("transactional:1,bulk:1"))
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    config = IntakeConfig(port=0, key_streams=parse_key_streams("default:bulk"))
    async with IntakeService(pool, config) as intake, aiohttp.ClientSession() as http:
        async with http.post(f"{intake.url}/v1/emails", json=email(stream="bulk")) as response:
            assert response.status == 202
        async with http.post(f"{intake.url}/v1/emails", json=email()) as response:
            assert response.status == 403
            error = (await response.json())["error"]
    assert (error["field"], error["code"]) == ("stream", "stream_not_allowed")
    assert "bulk" in error["message"]
