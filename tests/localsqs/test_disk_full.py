"""localsqs on a full disk: calls fail at once with a server error, then it serves again.

Runs on a small tmpfs (the ``small_disk`` fixture), which needs root (CI runs as root);
skipped with the reason otherwise.
"""

import asyncio
import logging
import pathlib
import uuid

import pytest

from aws.errors import Unavailable
from localsqs.server import LocalSqs, LocalSqsConfig
from mailpool.cli import main
from pool.blobs import BlobConfig, BlobMissing, BlobStore
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.sqs import SqsClient
from tests.support.disk import fill


def message(body: str) -> Outgoing:
    return Outgoing(body=body, group="g", dedup_id=uuid.uuid4().hex)


async def test_a_full_disk_fails_writes_at_once_and_the_engine_serves_again_once_freed(
    small_disk: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="localsqs")
    config = LocalSqsConfig(port=0, data_dir=small_disk / "sqs", durability="fsync")
    async with LocalSqs(config) as engine:
        pool = PoolConfig(endpoint_url=engine.url, region="us-east-1")
        async with SqsClient.from_config(pool) as sqs:
            url = await sqs.create_queue("full.fifo", {"FifoQueue": "true"})
            [stored] = await sqs.send_batch(url, [message("before")])
            assert isinstance(stored, str)
            filler = fill(small_disk)
            for _ in range(3):
                async with asyncio.timeout(5):  # an answer at once, never a hang
                    with pytest.raises(Unavailable) as failed:
                        await sqs.send_batch(url, [message("x" * 2000) for _ in range(10)])
                assert failed.value.code == "InternalFailure"  # a server error: nothing promised
            filler.unlink()  # space again: no restart needed
            [after] = await sqs.send_batch(url, [message("after")])
            assert isinstance(after, str)
            got = await sqs.receive(url, 0, max_messages=10, wait_s=0, visibility_s=30)
            assert [m.body for m in got] == ["before", "after"]
            counts = await sqs.attributes(url, ["ApproximateNumberOfMessagesNotVisible"])
            assert counts["ApproximateNumberOfMessagesNotVisible"] == "2"
    said = [r.getMessage() for r in caplog.records if r.name == "localsqs.store"]
    assert said == [
        "cannot write to the data directory; answering with server errors until it can",
        "writes succeed again",
    ]  # once per episode, however many calls failed


@pytest.mark.parametrize("existing", [False, True])
def test_starting_on_a_full_disk_exits_with_one_line_naming_the_data_directory(
    small_disk: pathlib.Path, capsys: pytest.CaptureFixture[str], existing: bool
) -> None:
    data = small_disk / "sqs"
    if existing:  # made while there was room, then the disk filled up
        asyncio.run(_touch_engine(data))
    fill(small_disk)
    assert main(["localsqs", "--port", "0", "--data-dir", str(data)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mailpool: localsqs cannot use its data directory")
    assert str(data) in line


async def _touch_engine(data: pathlib.Path) -> None:
    async with (
        LocalSqs(LocalSqsConfig(port=0, data_dir=data)) as engine,
        SqsClient.from_config(PoolConfig(endpoint_url=engine.url)) as sqs,
    ):
        await sqs.create_queue("made.fifo", {"FifoQueue": "true"})


async def test_an_object_on_a_full_disk_fails_clearly_stores_nothing_and_then_works(
    small_disk: pathlib.Path,
) -> None:
    config = LocalSqsConfig(port=0, data_dir=small_disk / "sqs", durability="fsync")
    async with LocalSqs(config) as engine:
        blobs = BlobConfig(bucket="bodies", endpoint_url=engine.url, region="us-east-1")
        async with BlobStore(blobs) as store:
            await store.provision()
            filler = fill(small_disk)
            async with asyncio.timeout(10):  # an answer, never a hang
                with pytest.raises(Unavailable) as failed:
                    await store.put("big", b"x" * 2_000_000)
            assert failed.value.code == "InternalError"
            with pytest.raises(BlobMissing):  # nothing half-stored under the key
                await store.get("bodies", "big")
            assert [p for p in (small_disk / "sqs" / "objects").iterdir()] == []
            filler.unlink()
            await store.put("big", b"x" * 2_000_000)
            assert await store.get("bodies", "big") == b"x" * 2_000_000
