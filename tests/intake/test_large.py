"""Emails past the queue's size limit go to S3 (SSE) behind a pointer, on moto's server."""

import dataclasses
import uuid
from typing import Any

import aiohttp
from aiobotocore.session import get_session

from intake.config import IntakeConfig
from intake.service import IntakeService
from mailpool.envelope import pointer_of
from pool.blobs import BlobConfig, BlobStore
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from sender.config import SenderConfig
from sender.providers.smtp import SmtpConfig, SmtpProvider
from sender.service import SenderService
from tests.support.smtp_sink import SmtpSink
from tests.support.waiting import until

BIG = "x" * 5000


async def test_a_large_email_travels_through_s3_and_its_body_is_deleted_after_delivery(
    pool_config: PoolConfig, sqs_endpoint: str, smtp_sink: SmtpSink
) -> None:
    config = dataclasses.replace(pool_config, max_message_bytes=1024)
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    blob_config = BlobConfig(bucket=f"mp-{uuid.uuid4().hex[:10]}", endpoint_url=sqs_endpoint,
                             region="us-east-1")  # fmt: skip
    async with BlobStore(blob_config) as store:
        await store.provision()
    email = {"from": "a@example.test", "to": "b@example.test", "text": BIG}
    intake = IntakeService(config, IntakeConfig(port=0), blobs=BlobStore(blob_config))
    async with (
        intake,
        aiohttp.ClientSession() as http,
        http.post(f"{intake.url}/v1/emails", json=email) as response,
    ):
        assert response.status == 202
        message_id = (await response.json())["id"]
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=sqs_endpoint
    ) as s3:
        head = await s3.head_object(Bucket=blob_config.bucket, Key=f"mailpool/bodies/{message_id}")
        assert head["ServerSideEncryption"] == "AES256"
        lifecycle = await s3.get_bucket_lifecycle_configuration(Bucket=blob_config.bucket)
        assert lifecycle["Rules"][0]["Expiration"]["Days"] == 15
        async with SqsClient.from_config(config) as client:
            bodies = []
            for shard in range(config.shards):
                url = await client.queue_url(config.queue_name(shard))
                got = await client.receive(url, shard, max_messages=10, wait_s=0, visibility_s=0)
                bodies.extend(m.body for m in got)
        [body] = bodies
        assert pointer_of(body) is not None
        assert len(body) < 1024
        settings = SenderConfig(wait_time_s=1, metrics_port=0)
        provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
        async with SenderService(config, settings, provider, blobs=BlobStore(blob_config)):
            [delivery] = await smtp_sink.wait_for(1)

            async def gone() -> bool:
                listed: dict[str, Any] = await s3.list_objects_v2(Bucket=blob_config.bucket)
                return listed.get("KeyCount", 0) == 0

            await until(gone, 10)
    assert delivery.mailpool_id == message_id
    assert delivery.message.get_content().strip() == BIG
