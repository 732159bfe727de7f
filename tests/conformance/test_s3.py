"""S3 behaviour mailpool's body store relies on, on moto's S3 and the embedded engine alike,
through aiobotocore, boto3 and the AWS CLI."""

import base64
import io
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from pool.blobs import BlobConfig, BlobMissing, BlobStore
from tests.conformance.conftest import EXTERNAL

PATH_STYLE = {"s3": {"addressing_style": "path"}}


@pytest.fixture(scope="module")
def s3_moto() -> Iterator[str]:
    """moto's server in a process of its own: moto's models are global to a process, and
    the objects this suite leaves would break the model dump the SES tests read from the
    session's server (moto answers a 500 for keys of a deleted bucket)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def endpoint(engine: str, s3_moto: str, localsqs_endpoint: str) -> str | None:
    """The engine's endpoint: this suite's moto server, localsqs, or an opted-in one."""
    return {"moto": s3_moto, "localsqs": localsqs_endpoint}.get(engine, EXTERNAL)


@pytest.fixture
async def s3(endpoint: str | None) -> AsyncIterator[Any]:
    """A raw aiobotocore S3 client for the engine under test."""
    config = AioConfig(retries={"total_max_attempts": 1}, read_timeout=30, **PATH_STYLE)
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=endpoint, config=config
    ) as client:
        yield client


@pytest.fixture
async def bucket(s3: Any, name: str) -> AsyncIterator[str]:
    """A bucket of its own, emptied and deleted afterwards."""
    await s3.create_bucket(Bucket=name)
    yield name
    for key in ("a", "b", "big", "cli", "bodies/old", "streamed"):
        await s3.delete_object(Bucket=name, Key=key)
    await s3.delete_bucket(Bucket=name)


def code(error: pytest.ExceptionInfo[ClientError]) -> str:
    return str(error.value.response["Error"]["Code"])


async def test_objects_are_put_read_and_deleted(s3: Any, bucket: str) -> None:
    data = os.urandom(300_000)
    put = await s3.put_object(Bucket=bucket, Key="a", Body=data, ContentType="message/rfc822",
                              ServerSideEncryption="AES256")  # fmt: skip
    assert put["ServerSideEncryption"] == "AES256"
    got = await s3.get_object(Bucket=bucket, Key="a")
    async with got["Body"] as stream:
        assert await stream.read() == data
    assert got["ContentType"] == "message/rfc822"
    assert got["ETag"] == put["ETag"]
    head = await s3.head_object(Bucket=bucket, Key="a")
    assert head["ContentLength"] == len(data)
    await s3.delete_object(Bucket=bucket, Key="a")
    with pytest.raises(ClientError) as gone:
        await s3.get_object(Bucket=bucket, Key="a")
    assert code(gone) == "NoSuchKey"
    with pytest.raises(ClientError) as headless:
        await s3.head_object(Bucket=bucket, Key="a")
    assert code(headless) == "404"
    await s3.delete_object(Bucket=bucket, Key="a")  # deleting what is gone is fine


async def test_a_missing_bucket_is_told(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as missing:
        await s3.put_object(Bucket=f"{name}-none", Key="a", Body=b"x")
    assert code(missing) == "NoSuchBucket"
    with pytest.raises(ClientError) as headless:
        await s3.head_bucket(Bucket=f"{name}-none")
    assert code(headless) == "404"


async def test_a_checksum_that_does_not_match_is_refused_and_nothing_stored(
    s3: Any, bucket: str, engine: str
) -> None:
    if engine == "moto":
        pytest.skip("moto stores an object whose CRC32 does not match (S3 answers BadDigest)")
    wrong = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
    with pytest.raises(ClientError) as refused:
        await s3.put_object(Bucket=bucket, Key="b", Body=b"payload", ChecksumCRC32=wrong)
    assert code(refused) in ("BadDigest", "InvalidRequest")
    with pytest.raises(ClientError):
        await s3.head_object(Bucket=bucket, Key="b")


def _chunked(data: bytes, crc32: bytes, size: int = 65_536) -> bytes:
    """``data`` as botocore streams it over HTTPS: aws-chunked, unsigned, with a trailing
    CRC32 (STREAMING-UNSIGNED-PAYLOAD-TRAILER)."""
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    return body + b"0\r\nx-amz-checksum-crc32:" + base64.b64encode(crc32) + b"\r\n\r\n"


@pytest.mark.parametrize("intact", [True, False], ids=["intact", "corrupted"])
async def test_an_aws_chunked_body_is_decoded_and_its_trailing_checksum_verified(
    s3: Any, bucket: str, endpoint: str | None, engine: str, intact: bool
) -> None:
    if endpoint is None:
        pytest.skip("sent by hand, unsigned: local engines only")
    if engine == "moto" and not intact:
        pytest.skip("moto does not verify a trailing checksum")
    data = os.urandom(200_000)
    crc = zlib.crc32(data if intact else data[1:]).to_bytes(4, "big")
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{endpoint}/{bucket}/b", data=_chunked(data, crc), headers=headers) as answer,
    ):
        assert answer.status == (200 if intact else 400), await answer.text()
    if intact:
        got = await s3.get_object(Bucket=bucket, Key="b")
        async with got["Body"] as stream:
            assert await stream.read() == data
    else:
        with pytest.raises(ClientError):
            await s3.head_object(Bucket=bucket, Key="b")


async def test_the_lifecycle_rule_is_kept_as_given(s3: Any, bucket: str) -> None:
    rule = {"ID": "bodies", "Filter": {"Prefix": "bodies/"}, "Status": "Enabled",
            "Expiration": {"Days": 15}}  # fmt: skip
    await s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [rule]}
    )
    [got] = (await s3.get_bucket_lifecycle_configuration(Bucket=bucket))["Rules"]
    assert got["ID"] == "bodies"
    assert got["Expiration"]["Days"] == 15
    assert got["Filter"]["Prefix"] == "bodies/"


def test_boto3_uploads_a_stream(endpoint: str | None, bucket: str) -> None:
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                          config=Config(**PATH_STYLE))  # fmt: skip
    data = os.urandom(2_500_000)
    client.upload_fileobj(io.BytesIO(data), bucket, "streamed")
    assert client.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data


async def test_the_body_store_round_trips_a_large_email(endpoint: str | None, bucket: str) -> None:
    config = BlobConfig(bucket=bucket, endpoint_url=endpoint, region="us-east-1")
    data = os.urandom(11 * 1024 * 1024)  # past the largest email, base64
    async with BlobStore(config) as store:
        await store.provision()
        await store.put("big", data)
        assert await store.get(bucket, "big") == data
        await store.delete(bucket, "big")
        with pytest.raises(BlobMissing):
            await store.get(bucket, "big")


def aws_cli() -> str | None:
    return os.environ.get("MAILPOOL_AWS_CLI") or shutil.which("aws")


@pytest.mark.skipif(aws_cli() is None, reason="no AWS CLI (make test installs one)")
def test_aws_cli_copies_up_and_down_byte_identical(
    endpoint: str | None, bucket: str, tmp_path: pathlib.Path
) -> None:
    if endpoint is None:
        pytest.skip("the AWS CLI test runs on local engines")
    source, back = tmp_path / "up.bin", tmp_path / "down.bin"
    source.write_bytes(os.urandom(3_000_000))
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    for args in ([str(source), f"s3://{bucket}/cli"], [f"s3://{bucket}/cli", str(back)]):
        subprocess.run(
            [str(aws_cli()), "s3", "cp", *args, "--endpoint-url", endpoint, "--only-show-errors"],
            env=env, capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
    assert back.read_bytes() == source.read_bytes()


async def test_the_engine_tells_how_much_disk_its_objects_take(
    s3: Any, bucket: str, endpoint: str | None, engine: str
) -> None:
    if engine != "localsqs":
        pytest.skip("the embedded engine's own metrics")

    async def scrape() -> dict[str, float]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{endpoint}/_localsqs/metrics") as answer,
        ):
            text = await answer.text()
        return {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line.startswith("localsqs_")
        }

    before = await scrape()
    await s3.put_object(Bucket=bucket, Key="a", Body=b"x" * 100_000)
    during = await scrape()
    await s3.delete_object(Bucket=bucket, Key="a")
    after = await scrape()
    objects = 'localsqs_data_bytes{part="objects"}'
    assert during[objects] - before[objects] == 100_000
    assert during["localsqs_objects"] == before["localsqs_objects"] + 1
    assert after[objects] == before[objects]  # a deleted object's bytes are gone
    assert during['localsqs_data_bytes{part="database"}'] > 0
