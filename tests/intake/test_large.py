"""Emails past the queue's size limit go to S3 (SSE) behind a pointer, on moto's server."""

import base64
import dataclasses
import io
import os
import uuid
from typing import Any

import aiohttp
import orjson
from aiobotocore.session import get_session

from intake.config import IntakeConfig
from intake.service import IntakeService
from pool.blobs import BlobConfig, BlobStore, pointer_of
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
        listed = await s3.list_objects_v2(Bucket=blob_config.bucket)
        [key] = [o["Key"] for o in listed["Contents"]]
        assert key.startswith(f"mailpool/bodies/{message_id}.")
        head = await s3.head_object(Bucket=blob_config.bucket, Key=key)
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


async def test_a_5_mib_email_with_files_goes_through_s3_and_arrives_byte_for_byte(
    provisioned: PoolConfig, sqs_endpoint: str, smtp_sink: SmtpSink
) -> None:
    report = os.urandom(4 * 1024 * 1024)
    logo = os.urandom(1024 * 1024)
    email = {
        "from": "a@example.test",
        "to": "b@example.test",
        "text": "Your report",
        "html": '<p>Your report</p><img src="cid:logo@example.test">',
        "attachments": [
            {"filename": "Bericht für März.pdf", "content": base64.b64encode(report).decode()},
            {"filename": "logo.png", "content": base64.b64encode(logo).decode(),
             "content_id": "logo@example.test"},
        ],
    }  # fmt: skip
    blob_config = BlobConfig(bucket=f"mp-{uuid.uuid4().hex[:10]}", endpoint_url=sqs_endpoint,
                             region="us-east-1")  # fmt: skip
    async with BlobStore(blob_config) as store:
        await store.provision()
    intake = IntakeService(provisioned, IntakeConfig(port=0), blobs=BlobStore(blob_config))
    async with (
        intake,
        aiohttp.ClientSession() as http,
        # A stream: aiohttp warns that a body this large given as bytes blocks the loop.
        http.post(
            f"{intake.url}/v1/emails",
            data=io.BytesIO(orjson.dumps(email)),
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status == 202
        message_id = (await response.json())["id"]
    settings = SenderConfig(wait_time_s=1, metrics_port=0)
    provider = SmtpProvider(SmtpConfig(port=smtp_sink.port))
    async with (
        get_session().create_client("s3", region_name="us-east-1", endpoint_url=sqs_endpoint) as s3,
        SenderService(provisioned, settings, provider, blobs=BlobStore(blob_config)),
    ):
        [delivery] = await smtp_sink.wait_for(1, within=30)

        async def gone() -> bool:
            listed: dict[str, Any] = await s3.list_objects_v2(Bucket=blob_config.bucket)
            return listed.get("KeyCount", 0) == 0

        await until(gone, 10)
    assert delivery.mailpool_id == message_id
    message = delivery.message
    assert message.get_content_type() == "multipart/mixed"
    files = {part.get_filename(): part for part in message.walk() if part.get_filename()}
    assert files["Bericht für März.pdf"].get_payload(decode=True) == report
    assert files["Bericht für März.pdf"].get_content_type() == "application/pdf"
    assert files["logo.png"].get_payload(decode=True) == logo
    assert files["logo.png"]["Content-ID"] == "<logo@example.test>"
    assert files["logo.png"].get_content_disposition() == "inline"
    assert all(len(line) <= 78 for line in delivery.raw.split(b"\r\n"))
