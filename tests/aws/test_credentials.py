"""Credentials that expire under load: the lean wire signs every call with live ones.

A container-credentials endpoint (what ECS gives a task, ``AWS_CONTAINER_CREDENTIALS_FULL_URI``)
hands out keys that expire ``LIFETIME_S`` after they are issued; a gate in front of the
embedded engine checks every request's signature with the secret of the key it names and
refuses a key it never issued or one past its expiry, as AWS does. The pool sends and
receives through the gate for ``SECONDS``: no call may fail and no send may be late.
``MAILPOOL_TEST_CREDENTIALS_LIFETIME`` / ``_SECONDS`` lengthen it (the issue's run: 120 / 300).
"""

import asyncio
import contextlib
import datetime
import os
import pathlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from metrics.exposition import process_registry
from metrics.pool import PoolMetrics
from pool.config import PoolConfig
from pool.messages import Outgoing
from pool.pool import QueuePool
from pool.provision import provision
from pool.sqs import SqsClient
from tests.support.engines import ThreadedLocalSqs
from tests.support.serving import served

LIFETIME_S = float(os.environ.get("MAILPOOL_TEST_CREDENTIALS_LIFETIME", "10"))
SECONDS = float(os.environ.get("MAILPOOL_TEST_CREDENTIALS_SECONDS", "30"))


@dataclass
class Issuer:
    """The credentials endpoint and the gate's record of what it issued."""

    issued: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)

    async def credentials(self, request: web.Request) -> web.Response:
        n = len(self.issued)
        key, secret, token = f"ASIA{n:016d}", uuid.uuid4().hex, f"token-{uuid.uuid4().hex}"
        expires = time.time() + LIFETIME_S
        self.issued[key] = (secret, token, expires)
        when = datetime.datetime.fromtimestamp(expires, datetime.UTC)
        return web.json_response(
            {
                "AccessKeyId": key,
                "SecretAccessKey": secret,
                "Token": token,
                "Expiration": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )

    def check(self, request: web.Request, body: bytes) -> str | None:
        """Why AWS would refuse this request (None: it would not)."""
        authorization = request.headers.get("Authorization", "")
        key = authorization.partition("Credential=")[2].partition("/")[0]
        if key not in self.issued:
            return "UnrecognizedClientException"
        secret, token, expires = self.issued[key]
        if time.time() > expires:
            return "ExpiredTokenException"
        if request.headers.get("X-Amz-Security-Token") != token:
            return "InvalidClientTokenId"
        date = request.headers["X-Amz-Date"]
        signed = authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";")
        headers = {k: v for k, v in request.headers.items() if k.lower() in signed}
        url = str(request.url)
        expected = AWSRequest(method=request.method, url=url, headers=headers, data=body)
        when = datetime.datetime.strptime(date, "%Y%m%dT%H%M%SZ")
        with _frozen(when):
            SigV4Auth(Credentials(key, secret, token), "sqs", "us-east-1").add_auth(expected)
        if expected.headers["Authorization"] != authorization:
            return "SignatureDoesNotMatch"
        self.used.add(key)
        return None


@contextlib.contextmanager
def _frozen(when: datetime.datetime) -> Iterator[None]:
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        yield


@contextlib.asynccontextmanager
async def gate(issuer: Issuer, engine: str) -> AsyncIterator[str]:
    """Serves the credentials at /credentials and checks then forwards every other call."""
    http = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        refused = issuer.check(request, body)
        if refused is not None:
            issuer.refused.append(refused)
            return web.json_response(
                {"__type": f"com.amazonaws.sqs#{refused}", "message": refused}, status=403
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with http.post(engine + request.path, data=body, headers=headers) as r:
            raw = await r.read()
            passed = {k: v for k, v in r.headers.items() if k.lower().startswith(("x-am", "cont"))}
        passed.pop("Content-Length", None)
        return web.Response(status=r.status, body=raw, headers=passed)

    app = web.Application()
    app.router.add_get("/credentials", issuer.credentials)
    app.router.add_post("/{tail:.*}", forward)
    try:
        async with served(app) as url:
            yield url
    finally:
        await http.close()


@pytest.fixture
def engine(tmp_path: pathlib.Path) -> Iterator[str]:
    server = ThreadedLocalSqs(tmp_path)
    yield server.start()
    server.stop()


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 60)
async def test_expiring_container_credentials_never_fail_a_call(
    engine: str, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    issuer = Issuer()
    async with gate(issuer, engine) as url:
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/credentials")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        config = PoolConfig(
            prefix=f"c{uuid.uuid4().hex[:8]}", shards=2, endpoint_url=url, region="us-east-1"
        )
        async with SqsClient.from_config(config) as sqs:
            await provision(sqs, config)
        sent, received, slowest = 0, 0, 0.0
        async with QueuePool(config, PoolMetrics(process_registry())) as pool:
            until = time.monotonic() + SECONDS

            async def send() -> None:
                nonlocal sent, slowest
                while time.monotonic() < until:
                    token = uuid.uuid4().hex
                    started = time.monotonic()
                    await pool.send(Outgoing(body=f"m-{token}", group=token, dedup_id=token))
                    slowest = max(slowest, time.monotonic() - started)
                    sent += 1
                    await asyncio.sleep(0.02)

            async def receive(shard: int) -> None:
                nonlocal received
                while time.monotonic() < until + 2 or received < sent:
                    got = await pool.receive(shard, max_messages=10, wait_s=1)
                    await asyncio.gather(*(pool.delete(m) for m in got))
                    received += len(got)
                    if time.monotonic() > until + 15:
                        break

            await asyncio.gather(*(send() for _ in range(4)), receive(0), receive(1))
    assert issuer.refused == []
    assert received == sent > SECONDS * 50
    assert slowest < 1.0, f"a send took {slowest:.2f} s"
    assert len(issuer.used) >= SECONDS / LIFETIME_S, "the credentials were not renewed"
