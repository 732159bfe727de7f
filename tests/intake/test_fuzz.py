"""The API fuzzed from its own OpenAPI document: no input ever produces a 5xx.

Emails are drawn from the document's Email schema (valid by schema, often invalid by
mailpool's stricter rules), then mutated into arbitrary JSON, plus raw bytes and odd
headers. Every answer must be a documented status below 500 whose body matches the
documented schema.
"""

import base64
import contextlib
import http.client
import json
import pathlib
import socket
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.validators import Draft202012Validator

from intake.config import IntakeConfig
from intake.openapi import openapi_document
from intake.service import IntakeService
from pool.config import PoolConfig
from pool.provision import provision
from pool.sqs import SqsClient
from state.config import StateConfig
from state.table import StateTable
from tests.support.background import Background
from tests.support.engines import ThreadedLocalSqs

DOCUMENT = openapi_document(IntakeConfig(), PoolConfig())
EMAIL_SCHEMA = DOCUMENT["components"]["schemas"]["Email"]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = sorted(EMAIL_SCHEMA["properties"])
# Strings that look like what the fields expect, so the fuzzer gets past the first check.
ADDRESSES = st.sampled_from(["a@example.test", "Ana Díaz <ana@example.test>", "x@bücher.example"])


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values for the subset of JSON Schema the Email schema uses."""
    if "oneOf" in schema:
        return st.one_of(*(from_schema(s) for s in schema["oneOf"]))
    kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:
        if kind == "null":
            options.append(st.none())
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "string" and schema.get("contentEncoding") == "base64":
            files = st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
            options.append(files | st.text(max_size=40))
        elif kind == "string":
            limit = min(schema.get("maxLength", 300), 300)
            options.append(ADDRESSES | st.text(min_size=schema.get("minLength", 0), max_size=limit))
        elif kind == "array":
            item = from_schema(schema["items"])
            options.append(st.lists(item, max_size=min(schema.get("maxItems", 5), 5)))
        elif kind == "object" and "properties" in schema:
            fields = {k: from_schema(v) for k, v in schema["properties"].items()}
            required = set(schema.get("required", ()))
            options.append(st.fixed_dictionaries(
                {k: v for k, v in fields.items() if k in required},
                optional={k: v for k, v in fields.items() if k not in required},
            ))  # fmt: skip
        elif kind == "object":
            values = from_schema(schema.get("additionalProperties", {"type": "string"}))
            options.append(st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=3))
    return st.one_of(*options)


@st.composite
def emails(draw: st.DrawFn) -> Any:
    """An email drawn from the OpenAPI Email schema, sometimes with a field turned to junk."""
    properties = EMAIL_SCHEMA["properties"]
    chosen = draw(st.sets(st.sampled_from(FIELDS)))
    doc = {name: draw(from_schema(properties[name])) for name in {"from", *chosen}}
    if draw(st.booleans()):
        doc[draw(st.sampled_from([*FIELDS, "extra"]))] = draw(JSON)
    return doc


@contextlib.asynccontextmanager
async def intake(engine: str) -> AsyncIterator[IntakeService]:
    config = PoolConfig(
        prefix=f"fz{uuid.uuid4().hex[:8]}", shards=2, endpoint_url=engine, region="us-east-1"
    )
    async with SqsClient.from_config(config) as client:
        await provision(client, config)
    # With the state store, so status, suppressions, unsubscribe and keys are fuzzed too.
    state = StateConfig(enabled=True, table=f"{config.prefix}-state", endpoint_url=engine,
                        region="us-east-1", secret=b"f" * 32,
                        public_url="https://mail.example.test")  # fmt: skip
    async with StateTable(state) as table:
        await table.provision()
    async with IntakeService(config, IntakeConfig(port=0), state=state) as service:
        yield service


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    engine = ThreadedLocalSqs(pathlib.Path(tmp_path_factory.mktemp("fuzz")))
    url = engine.start()
    service = Background(lambda: intake(url))
    yield service.start().port
    service.stop()
    engine.stop()


def call(
    port: int, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        if response.status == 204 or response.getheader("Content-Type", "").startswith("text/"):
            return response.status, None
        return response.status, orjson.loads(raw)
    finally:
        connection.close()


def encode(doc: Any) -> bytes:
    """JSON as any client might send it: stdlib json, so big integers and lone surrogates
    (which orjson refuses to write) reach the server too."""
    return json.dumps(doc).encode()


def check(path: str, status: int, body: Any, method: str = "post") -> None:
    assert status < 500, (path, status, body)
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert str(status) in responses, (path, status)
    if body is None:
        return
    schema = responses[str(status)]["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": DOCUMENT["components"]},
                        cls=Draft202012Validator)  # fmt: skip


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)  # fmt: skip


@FUZZ
@given(doc=emails() | JSON)
def test_single_emails_never_get_a_5xx(port: int, doc: Any) -> None:
    status, body = call(port, "/v1/emails", encode(doc), {"Content-Type": "application/json"})
    check("/v1/emails", status, body)


@FUZZ
@given(docs=st.lists(emails() | JSON, min_size=0, max_size=6) | JSON)
def test_batches_never_get_a_5xx(port: int, docs: Any) -> None:
    status, body = call(
        port, "/v1/emails/batch", encode(docs), {"Content-Type": "application/json"}
    )
    check("/v1/emails/batch", status, body)


# Characters HTTP allows in a header value (RFC 9110 field-vchar, space, tab, obs-text).
HEADER_TEXT = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]) | st.sampled_from(" \t"),
    max_size=300,
)


@FUZZ
@given(raw=st.binary(max_size=300), key=HEADER_TEXT)
def test_raw_bodies_and_odd_idempotency_keys_never_get_a_5xx(
    port: int, raw: bytes, key: str
) -> None:
    for path in ("/v1/emails", "/v1/emails/batch"):
        headers = {"Content-Type": "application/json"}
        status, body = call(
            port, path, raw, {**headers, "Idempotency-Key": key} if key.strip() else headers
        )
        check(path, status, body)


# Path segments: anything printable, percent-encoded as a client would send it.
SEGMENT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=80
) | st.sampled_from(["a@example.test", "A@Bücher.Example", "0" * 40])


@FUZZ
@given(segment=SEGMENT, method=st.sampled_from(["GET", "PUT", "DELETE"]), limit=JSON)
def test_state_endpoints_never_get_a_5xx(port: int, segment: str, method: str, limit: Any) -> None:
    quoted = urllib.parse.quote(segment, safe="")
    for path, template, verb in (
        (f"/v1/emails/{quoted}", "/v1/emails/{id}", "GET"),
        (f"/v1/suppressions/{quoted}", "/v1/suppressions/{address}", method),
        (f"/v1/suppressions?limit={urllib.parse.quote(str(limit))}&after={quoted}",
         "/v1/suppressions", "GET"),
        (f"/unsubscribe/{quoted}", "/unsubscribe/{token}", "POST"),
        (f"/unsubscribe/{quoted}", "/unsubscribe/{token}", "GET"),
    ):  # fmt: skip
        status, body = call(port, path, b"", {}, verb)
        check(template, status, body, verb.lower())


def test_a_header_http_itself_forbids_gets_400_not_5xx(port: int) -> None:
    # A control character in a header value is malformed HTTP: aiohttp's parser answers
    # 400 before any handler runs (its body is not ours, so not JSON).
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"POST /v1/emails HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \x1b\r\n"
                    b"Content-Length: 0\r\n\r\n")  # fmt: skip
        status = int(raw.recv(64).split(b" ")[1])
    assert status == 400


def test_the_fuzzer_reaches_acceptance(port: int) -> None:
    # Guard against a fuzzer that only ever hits validation: a real email is accepted.
    email = {"from": "a@example.test", "to": "b@example.test", "text": "fuzz"}
    status, body = call(
        port, "/v1/emails", orjson.dumps(email), {"Content-Type": "application/json"}
    )
    assert status == 202, body
