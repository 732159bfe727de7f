"""/openapi.json describes the API exactly: its routes, and the answers the API really gives."""

from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp.test_utils import TestClient
from jsonschema.validators import Draft202012Validator

from intake import validation
from intake.config import IntakeConfig
from pool.config import PoolConfig
from tests.intake.test_api import EMAIL, start_client


@pytest.fixture
async def api(provisioned: PoolConfig) -> AsyncIterator[TestClient[Any, Any]]:
    client = await start_client(provisioned)
    yield client
    await client.close()


async def document(api: TestClient[Any, Any]) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status == 200
    doc: dict[str, Any] = await response.json()
    return doc


def schema_of(doc: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    answer = doc["paths"][path][method]["responses"][str(status)]
    schema = answer["content"]["application/json"]["schema"]
    return {**schema, "components": doc["components"]}


def check(doc: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    resolver_doc = schema_of(doc, path, method, status)
    jsonschema.validate(body, resolver_doc, cls=Draft202012Validator)


async def test_every_route_is_documented_and_nothing_else(api: TestClient[Any, Any]) -> None:
    doc = await document(api)
    served = {
        (route.resource.canonical, route.method.lower())
        for route in api.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served == documented


async def test_the_email_schema_lists_exactly_the_accepted_fields(
    api: TestClient[Any, Any],
) -> None:
    doc = await document(api)
    email = doc["components"]["schemas"]["Email"]
    assert set(email["properties"]) == validation.EMAIL_FIELDS
    Draft202012Validator(email).validate(EMAIL)


async def test_real_answers_match_their_documented_schemas(api: TestClient[Any, Any]) -> None:
    doc = await document(api)
    cases: list[tuple[str, Any, dict[str, str]]] = [
        ("/v1/emails", EMAIL, {}),
        ("/v1/emails", {**EMAIL, "to": "bad"}, {}),
        ("/v1/emails", b"{", {}),
        ("/v1/emails", {**EMAIL, "text": "x" * 1_040_000}, {}),
        ("/v1/emails", EMAIL, {"Idempotency-Key": "bad key"}),
        ("/v1/emails/batch", [EMAIL, {**EMAIL, "to": "bad"}], {}),
        ("/v1/emails/batch", [{**EMAIL, "to": "bad"}], {}),
        ("/v1/emails/batch", [], {}),
        ("/v1/emails/batch", [EMAIL] * 501, {}),
        ("/v1/emails", EMAIL, {"Content-Type": "text/plain"}),
        ("/v1/emails/batch", [EMAIL], {"Content-Type": "text/plain"}),
    ]
    seen = set()
    for path, body, headers in cases:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        headers = {"Content-Type": "application/json", **headers}
        response = await api.post(path, data=data, headers=headers)
        status = response.status
        assert str(status) in doc["paths"][path]["post"]["responses"], (path, status)
        check(doc, path, "post", status, await response.json())
        seen.add((path, status))
    assert seen == {
        ("/v1/emails", 202), ("/v1/emails", 422), ("/v1/emails", 400), ("/v1/emails", 413),
        ("/v1/emails/batch", 202), ("/v1/emails/batch", 422), ("/v1/emails/batch", 413),
        ("/v1/emails", 415), ("/v1/emails/batch", 415),
    }  # fmt: skip
    for path, status in (("/healthz", 200), ("/readyz", 200)):
        response = await api.get(path)
        assert response.status == status
        check(doc, path, "get", status, await response.json())


def test_documented_limits_follow_configuration() -> None:
    from intake.openapi import openapi_document

    intake = IntakeConfig(max_batch=7, max_email_bytes=5000, max_attachments=3)
    doc = openapi_document(intake, PoolConfig(max_message_bytes=4096))
    batch = doc["paths"]["/v1/emails/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["maxItems"] == 7
    too_large = doc["paths"]["/v1/emails"]["post"]["responses"]["413"]["description"]
    assert "over 4032 bytes" in too_large  # what the queue carries, less the DLQ's room
    assert "over 5000 bytes" in too_large
    attachments = doc["components"]["schemas"]["Email"]["properties"]["attachments"]
    assert attachments["maxItems"] == 3
