"""Attachments at intake: accepted as given, or refused with the field named, never queued."""

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from core.envelope import Envelope
from intake.config import REQUEST_OVERHEAD, IntakeConfig
from pool.config import PoolConfig
from tests.intake.test_api import EMAIL, post, start_client
from tests.support.queues import count, drain

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def attach(**fields: Any) -> dict[str, Any]:
    return {**EMAIL, "attachments": [{"filename": "a.pdf", "content": b64(PDF), **fields}]}


@pytest.fixture
async def api(provisioned: PoolConfig) -> AsyncIterator[TestClient[Any, Any]]:
    client = await start_client(provisioned, IntakeConfig(max_email_bytes=4096, max_attachments=3))
    yield client
    await client.close()


async def test_files_and_inline_images_are_queued_with_their_bytes_and_types(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    email = {
        **EMAIL,
        "html": '<p>Your invoice</p><img src="cid:logo@shop">',
        "attachments": [
            {"filename": "Rechnung März.pdf", "content": b64(PDF)},
            {"filename": "logo.png", "content": b64(PNG), "content_id": "logo@shop"},
            # MIME-style base64, wrapped in lines, is taken as well.
            {"filename": "notes", "content": base64.encodebytes(b"x" * 100).decode(),
             "content_type": "Text/Plain"},
        ],
    }  # fmt: skip
    status, body, _ = await post(api, "/v1/emails", email)
    assert status == 202, body
    [queued] = await drain(provisioned)
    envelope = Envelope.decode(queued.body)
    assert envelope.id == body["id"]
    parts = envelope.email.attachments
    assert [(p.filename, p.content_type, p.content_id) for p in parts] == [
        ("Rechnung März.pdf", "application/pdf", None),
        ("logo.png", "image/png", "logo@shop"),
        ("notes", "text/plain", None),
    ]
    assert [p.content for p in parts] == [PDF, PNG, b"x" * 100]
    assert [p.size for p in parts] == [len(PDF), len(PNG), 100]


REFUSED = [
    ({**EMAIL, "attachments": {"filename": "a"}}, 422, "invalid_type", "attachments"),
    ({**EMAIL, "attachments": [{"filename": "a.txt", "content": "QQ=="}] * 4}, 422, "too_many",
     "attachments"),
    (attach(content=b64(b"x" * 4091)), 413, "email_too_large", "attachments[0].content"),
    ({**EMAIL, "text": "x" * 5000}, 413, "email_too_large", "text"),
    (attach(content="not base64!"), 422, "invalid_base64", "attachments[0].content"),
    (attach(content="QQ"), 422, "invalid_base64", "attachments[0].content"),
    (attach(content=5), 422, "invalid_base64", "attachments[0].content"),
    (attach(filename="../etc/passwd"), 422, "invalid_filename", "attachments[0].filename"),
    (attach(filename="a\\b.pdf"), 422, "invalid_filename", "attachments[0].filename"),
    (attach(filename="a\r\nX-Evil: 1.pdf"), 422, "invalid_filename", "attachments[0].filename"),
    (attach(filename=""), 422, "invalid_filename", "attachments[0].filename"),
    (attach(filename="x" * 256), 422, "invalid_filename", "attachments[0].filename"),
    (attach(filename="setup.exe"), 422, "unsupported_attachment_type", "attachments[0].filename"),
    (attach(filename="run.JS"), 422, "unsupported_attachment_type", "attachments[0].filename"),
    (attach(content_type="multipart/mixed"), 422, "invalid_content_type",
     "attachments[0].content_type"),
    (attach(content_type="pdf"), 422, "invalid_content_type", "attachments[0].content_type"),
    (attach(content_type="text/plain; charset=x"), 422, "invalid_content_type",
     "attachments[0].content_type"),
    ({**attach(content_id="<x>"), "html": "<p>"}, 422, "invalid_content_id",
     "attachments[0].content_id"),
    (attach(content_id="logo"), 422, "inline_without_html", "attachments[0].content_id"),
    ({**EMAIL, "html": "<p>", "attachments": [
        {"filename": "a.png", "content": "QQ==", "content_id": "x"},
        {"filename": "b.png", "content": "QQ==", "content_id": "x"}]}, 422,
     "duplicate_content_id", "attachments[1].content_id"),
    (attach(size=3), 422, "unknown_field", "attachments[0].size"),
    ({**EMAIL, "attachments": [{"content": "QQ=="}]}, 422, "required", "attachments[0].filename"),
    ({**EMAIL, "attachments": [{"filename": "a.txt"}]}, 422, "required", "attachments[0].content"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code", "field"), REFUSED)
async def test_a_bad_attachment_is_refused_naming_its_field_and_nothing_is_queued(
    api: TestClient[Any, Any],
    provisioned: PoolConfig,
    body: dict[str, Any],
    status: int,
    code: str,
    field: str,
) -> None:
    got_status, got, _ = await post(api, "/v1/emails", body)
    assert (got_status, got["error"]["code"], got["error"]["field"]) == (status, code, field)
    assert "passwd" not in got["error"]["message"]  # the input is never echoed
    assert await count(provisioned) == 0


async def test_a_batch_carries_attachments_and_refuses_only_its_bad_email(
    api: TestClient[Any, Any], provisioned: PoolConfig
) -> None:
    status, body, _ = await post(
        api, "/v1/emails/batch", [attach(), attach(filename="a.bat"), attach(filename="b.csv")]
    )
    assert status == 202
    results = body["results"]
    assert [sorted(r) for r in results] == [["id"], ["error"], ["id"]]
    assert results[1]["error"]["field"] == "[1].attachments[0].filename"
    queued = sorted(Envelope.decode(m.body).email.attachments[0].filename
                    for m in await drain(provisioned))  # fmt: skip
    assert queued == ["a.pdf", "b.csv"]


def test_the_request_cap_follows_the_email_limit_as_base64() -> None:
    config = IntakeConfig.from_env({"MAILPOOL_MAX_EMAIL_BYTES": "3000"})
    assert config.max_request_bytes == 4000 + REQUEST_OVERHEAD
    assert IntakeConfig().max_request_bytes == 10 * 1024 * 1024 * 4 // 3 + 1 + REQUEST_OVERHEAD
    explicit = IntakeConfig.from_env({"MAILPOOL_MAX_REQUEST_BYTES": "5000"})
    assert explicit.max_request_bytes == 5000
