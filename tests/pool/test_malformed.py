"""An answer botocore or mailpool cannot map fails that one call, never the pool."""

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator

import pytest

from aws.errors import AwsError
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing, Received
from pool.pool import QueuePool
from tests.support.answers import MALFORMED, AnswerProxy, answer_proxy
from tests.support.queues import count

#: What a failure says: the action and an exception type, never anything of the message.
NAMED = re.compile(r"^(?P<action>[\w.]+): (unexpected [A-Z]\w+|[A-Z]\w+|no answer for the entry)")


def message(text: str = "body") -> Outgoing:
    token = uuid.uuid4().hex
    return Outgoing(body=f"{text}-{token}", group=token, dedup_id=token)


@pytest.fixture
async def proxied(
    provisioned: PoolConfig, sqs_endpoint: str
) -> AsyncIterator[tuple[QueuePool, AnswerProxy]]:
    async with answer_proxy(sqs_endpoint) as proxy:
        config = dataclasses.replace(
            provisioned,
            endpoint_url=proxy.url,
            shards=1,
            send_deadline_s=0.5,
            settle_deadline_s=0.5,
            answer_margin_s=0.5,
        )
        async with QueuePool(config, PoolMetrics(process_registry())) as pool:
            yield pool, proxy
            assert pool.health.ok, "a malformed answer must never kill the pool"


def assert_names(error: AwsError, action: str) -> None:
    said = NAMED.match(str(error))
    assert said is not None, str(error)
    assert said["action"] == action
    assert error.retriable
    assert "body-" not in str(error)


@pytest.mark.parametrize("answer", ["array", "entry-without-id", "not-json"])
async def test_a_malformed_send_answer_fails_that_send_and_the_next_goes_out(
    proxied: tuple[QueuePool, AnswerProxy], answer: str
) -> None:
    pool, proxy = proxied
    proxy.malform("SendMessageBatch", MALFORMED[answer])
    with pytest.raises(AwsError) as failed:
        await pool.send(message())
    assert_names(failed.value, "SendMessageBatch")
    assert proxy.given["SendMessageBatch"] >= 1
    proxy.heal()
    # The next call goes out once the failures' backoff (at most 1 s) has passed.
    await pool.send(message(), deadline_s=3)
    assert await count(pool.config) == 1


@pytest.mark.parametrize("answer", ["array", "message-without-receipt"])
async def test_a_malformed_receive_answer_fails_that_receive_only(
    proxied: tuple[QueuePool, AnswerProxy], answer: str
) -> None:
    pool, proxy = proxied
    await pool.send(message())
    proxy.malform("ReceiveMessage", MALFORMED[answer])
    with pytest.raises(AwsError) as failed:
        await pool.receive(0, max_messages=10, wait_s=0)
    assert_names(failed.value, "ReceiveMessage")
    proxy.heal()
    [received] = await pool.receive(0, max_messages=10, wait_s=1)
    await pool.delete(received)
    assert await count(pool.config) == 0


@pytest.mark.parametrize("answer", ["array", "entry-without-id", "not-json"])
@pytest.mark.parametrize("action", ["DeleteMessageBatch", "ChangeMessageVisibilityBatch"])
async def test_a_malformed_settle_answer_fails_those_entries_and_the_next_call_lands(
    proxied: tuple[QueuePool, AnswerProxy], action: str, answer: str
) -> None:
    pool, proxy = proxied
    await pool.send(message())
    [received] = await pool.receive(0, max_messages=10, wait_s=1)
    proxy.malform(action, MALFORMED[answer])

    async def settle(received: Received) -> None:
        if action == "DeleteMessageBatch":
            await pool.delete(received)
        else:
            await pool.set_visibility(received, 0)

    with pytest.raises(AwsError) as failed:
        await settle(received)
    assert_names(failed.value, action)
    # Given up and nothing left waiting: no shard stays gated on deletes that no longer exist.
    assert not pool.settles_failing(0)
    proxy.heal()
    await asyncio.sleep(1.0)  # the failures' backoff (at most 1 s) holds the next call back
    await settle(received)
    if action == "DeleteMessageBatch":
        assert await count(pool.config) == 0
    else:  # visible again at once, so it can be received
        [again] = await pool.receive(0, max_messages=10, wait_s=1)
        assert again.message_id == received.message_id
