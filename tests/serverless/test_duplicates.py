"""The standard-queue variant: an engine that hands every message over twice, and the
claim that keeps each email to one send."""

import collections
import dataclasses
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.settings import SettingError
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.service import SenderService
from serverless.worker import LambdaWorker
from state.config import StateConfig
from state.table import StateTable
from tests.support.engines import ThreadedLocalSqs
from tests.support.enqueue import enqueue
from tests.support.fake_provider import FakeProvider
from tests.support.queues import count
from tests.support.waiting import until
from tests.support.workers import QUICK, delivering

FAST = SenderConfig(wait_time_s=1, backoff_s=1, max_backoff_s=1, metrics_port=0)


@pytest.fixture(scope="module")
def doubling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded engine, storing every message sent to a standard queue twice."""
    server = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("twice")), duplicates=1.0)
    yield server.start()
    server.stop()


async def standard_pool(endpoint: str) -> tuple[PoolConfig, StateConfig]:
    pool = PoolConfig(prefix=f"s{uuid.uuid4().hex[:8]}", shards=2, endpoint_url=endpoint,
                      region="us-east-1", queue_type="standard",
                      visibility_timeout_s=2)  # fmt: skip
    async with SqsClient.from_config(pool) as client:
        await provision(client, pool)
    state = StateConfig(enabled=True, table=f"{pool.prefix}-state", endpoint_url=endpoint,
                        region="us-east-1", secret=b"s" * 32)  # fmt: skip
    async with StateTable(state) as table:
        await table.provision()
    return pool, state


def email(n: int) -> dict[str, Any]:
    return {"from": "ana@example.test", "to": f"r{n}@example.test", "text": "t"}


@pytest.mark.parametrize("claims", [False, True], ids=["without-claims", "with-claims"])
async def test_each_copy_is_sent_without_the_claim_and_only_one_with_it(
    doubling: str, claims: bool
) -> None:
    pool, state = await standard_pool(doubling)
    ids = await enqueue(pool, [email(n) for n in range(30)])
    provider = FakeProvider()
    async with delivering("lambda", pool, FAST, provider, state=state, claims=claims):

        async def drained() -> bool:
            sent = {e.id for e in provider.sent}
            return sent >= set(ids) and await count(pool) == 0

        await until(drained, 40)
    sends = collections.Counter(e.id for e in provider.sent)
    assert set(sends) == set(ids)
    if claims:
        assert max(sends.values()) == 1  # every copy beyond the first was recognised
    else:
        assert sum(sends.values()) == 2 * len(ids)  # the engine handed each over twice


async def test_a_transient_failure_releases_the_claim_and_the_next_copy_sends(
    doubling: str,
) -> None:
    pool, state = await standard_pool(doubling)
    [email_id] = await enqueue(pool, [email(0)])
    provider = FakeProvider(answers={"r0@example.test": "transient"},
                            times={"r0@example.test": 1})  # fmt: skip
    async with delivering("lambda", pool, FAST, provider, state=state):

        async def drained() -> bool:
            return bool(provider.sent) and await count(pool) == 0

        await until(drained, 40)
    # Two copies, a failed attempt, then one send: the failure released the claim.
    assert [e.id for e in provider.sent] == [email_id]
    assert provider.attempts == 2


async def test_a_standard_pool_needs_the_state_store_and_is_not_the_senders(
    doubling: str,
) -> None:
    pool, _ = await standard_pool(doubling)
    with pytest.raises(SettingError, match="MAILPOOL_STATE=on"):
        LambdaWorker(pool, FAST, QUICK, FakeProvider())
    with pytest.raises(SettingError, match="FIFO shards"):
        SenderService(pool, FAST, FakeProvider())


def test_a_standard_pool_names_its_queues_without_fifo() -> None:
    pool = dataclasses.replace(PoolConfig(prefix="p"), queue_type="standard")
    assert (pool.queue_name(3), pool.dlq_name(3)) == ("p-3", "p-3-dlq")
