"""localsqs keeps every acknowledged message across kill -9 and restores its state."""

import asyncio
import pathlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session


class Engine:
    """`mailpool localsqs` as a child process on a data directory."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = data_dir
        self.process: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailpool", "localsqs", "--port", str(port),
            "--data-dir", str(self.data_dir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(20):
            line = (await self.process.stdout.readline()).decode()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        self.url = match.group(0)
        return self.url

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
        return int(self.process.returncode or 0)


@pytest.fixture
async def engine(tmp_path: pathlib.Path) -> AsyncIterator[Engine]:
    server = Engine(tmp_path / "data")
    yield server
    await server.stop()


def client(url: str) -> Any:
    return get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url=url,
        config=AioConfig(retries={"total_max_attempts": 1}),
    )  # fmt: skip


async def test_kill_9_loses_no_acknowledged_message_and_keeps_state(engine: Engine) -> None:
    url = await engine.start()
    port = int(url.rsplit(":", 1)[1])
    async with client(url) as sqs:
        queue = (await sqs.create_queue(
            QueueName="durable.fifo",
            Attributes={"FifoQueue": "true", "VisibilityTimeout": "2"},
        ))["QueueUrl"]  # fmt: skip
        sent = []
        for batch in range(20):
            answer = await sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "MessageBody": f"m{batch * 10 + i}", "MessageGroupId": f"g{i}",
                 "MessageDeduplicationId": f"d{batch * 10 + i}"} for i in range(10)])  # fmt: skip
            assert not answer.get("Failed")
            sent.extend(e["MessageId"] for e in answer["Successful"])
        in_flight = await sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        assert len(in_flight["Messages"]) == 10
    await engine.kill()

    await engine.start(port)
    async with client(engine.url) as sqs:
        queue = (await sqs.get_queue_url(QueueName="durable.fifo"))["QueueUrl"]
        counts = (await sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"]))[
            "Attributes"
        ]
        assert counts["ApproximateNumberOfMessages"] == "190"
        assert counts["ApproximateNumberOfMessagesNotVisible"] == "10"
        # A deduplication ID from before the crash still holds.
        await sqs.send_message(QueueUrl=queue, MessageBody="dup", MessageGroupId="g0",
                               MessageDeduplicationId="d0")  # fmt: skip
        await asyncio.sleep(2.1)  # the in-flight ones come back after their timeout
        received: list[str] = []
        while True:
            answer = await sqs.receive_message(
                QueueUrl=queue, MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )  # fmt: skip
            messages = answer.get("Messages", [])
            if not messages:
                break
            received.extend(m["MessageId"] for m in messages)
            await sqs.delete_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])  # fmt: skip
    assert sorted(received) == sorted(sent)


async def test_a_restart_keeps_queues_and_attributes(engine: Engine) -> None:
    url = await engine.start()
    async with client(url) as sqs:
        await sqs.create_queue(QueueName="kept", Attributes={"VisibilityTimeout": "17"})
    assert await engine.stop() == 0
    await engine.start()
    async with client(engine.url) as sqs:
        queue = (await sqs.get_queue_url(QueueName="kept"))["QueueUrl"]
        assert queue.startswith(engine.url)
        attributes = await sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    assert attributes["Attributes"]["VisibilityTimeout"] == "17"
    assert (engine.data_dir / "localsqs.db").is_file()


async def test_an_acknowledged_object_survives_kill_9(engine: Engine) -> None:
    url = await engine.start()
    config = AioConfig(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1})
    data = bytes(range(256)) * 4096  # 1 MiB
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=url, config=config,
        aws_access_key_id="k", aws_secret_access_key="s",
    ) as s3:  # fmt: skip
        await s3.create_bucket(Bucket="bodies")
        await s3.put_object(Bucket="bodies", Key="b1", Body=data)
    await engine.kill()
    url = await engine.start()
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=url, config=config,
        aws_access_key_id="k", aws_secret_access_key="s",
    ) as s3:  # fmt: skip
        got = await s3.get_object(Bucket="bodies", Key="b1")
        async with got["Body"] as stream:
            assert await stream.read() == data
