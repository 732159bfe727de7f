"""DLQ tooling on moto: list without content, redrive in order to the source, purge."""

import asyncio
import time

import pytest

from core.envelope import Envelope
from intake.validation import parse_email
from mailpool.cli import main
from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.dlq import list_dead_letters, redrive
from pool.messages import Outgoing
from pool.pool import QueuePool
from pool.sqs import SqsClient
from tests.support.queues import count, drain


async def dead_letter_some(config: PoolConfig) -> list[str]:
    """Enqueue envelopes in two groups, then dead-letter them all; their mailpool ids."""
    ids = []
    async with QueuePool(config, PoolMetrics(process_registry())) as pool:
        for i in range(6):
            group = f"group-{i % 2}"
            envelope = Envelope(
                id=f"{i:032x}", group=group, accepted_at=time.time(),
                email=parse_email({"from": "a@example.test", "to": "secret@example.test",
                                   "text": f"m{i}"}),
            )  # fmt: skip
            await pool.send(Outgoing(envelope.encode().decode(), group, envelope.id))
            ids.append(envelope.id)
        for shard in range(config.shards):
            while batch := await pool.receive(shard, max_messages=10, wait_s=0):
                for message in batch:
                    await pool.dead_letter(message, "smtp_550_all_recipients")
    return ids


async def test_list_shows_ids_and_reasons_and_changes_nothing(provisioned: PoolConfig) -> None:
    ids = await dead_letter_some(provisioned)
    async with SqsClient.from_config(provisioned) as client:
        letters = await list_dead_letters(client, provisioned)
    assert sorted(Envelope.decode(letter.body).id for letter in letters) == sorted(ids)
    assert {letter.reason for letter in letters} == {"smtp_550_all_recipients"}
    assert await count(provisioned, dlq=True) == 6
    assert await count(provisioned) == 0


async def test_redrive_moves_messages_back_in_group_order_at_the_given_rate(
    provisioned: PoolConfig,
) -> None:
    ids = await dead_letter_some(provisioned)
    started = time.monotonic()
    async with SqsClient.from_config(provisioned) as client:
        moved = await redrive(client, provisioned, rate=20)
    assert moved == 6
    assert time.monotonic() - started >= 5 / 20
    assert await count(provisioned, dlq=True) == 0
    back = await drain(provisioned)
    for group in ("group-0", "group-1"):
        order = [Envelope.decode(m.body).id for m in back if m.group == group]
        assert order == [i for n, i in enumerate(ids) if f"group-{n % 2}" == group]
    assert all("mailpool-reason" not in m.attributes for m in back)


def flags(config: PoolConfig) -> list[str]:
    return ["--prefix", config.prefix, "--shards", str(config.shards),
            "--endpoint-url", str(config.endpoint_url), "--region", "us-east-1"]  # fmt: skip


async def test_cli_lists_without_pii_and_purges_only_with_yes(
    provisioned: PoolConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = await dead_letter_some(provisioned)
    assert await asyncio.to_thread(main, ["dlq", "list", *flags(provisioned)]) == 0
    listing = capsys.readouterr().out
    assert all(i in listing for i in ids)
    assert "smtp_550_all_recipients" in listing
    assert "@" not in listing
    assert await asyncio.to_thread(main, ["dlq", "purge", *flags(provisioned)]) == 2
    assert await count(provisioned, dlq=True) == 6
    assert await asyncio.to_thread(main, ["dlq", "purge", "--yes", *flags(provisioned)]) == 0
    assert await count(provisioned, dlq=True) == 0
