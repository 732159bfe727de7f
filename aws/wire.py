"""The lean wire: the hot AWS calls without the SDK's machinery.

botocore spends about a millisecond of CPU on a call (its event hooks, its model-driven
serializer and parser, its retry and checksum plumbing); the request itself is a JSON body
and a signature. For the calls every email makes — SQS ``SendMessageBatch``,
``ReceiveMessage``, ``DeleteMessageBatch``, ``ChangeMessageVisibilityBatch``, DynamoDB's
item and batch calls, SES v2 ``SendEmail`` — this module builds the request with orjson,
signs it (``aws.sigv4``, the signing key derived once a day), posts it over kept-alive
connections (``aws.http``), and parses the answer with orjson into exactly the dict
botocore returns.

Everything else botocore does for these calls is done here too, from botocore's own parts:
the endpoint, region and credentials are those of the aiobotocore client the process opens
anyway (so ``AWS_ENDPOINT_URL[_<SERVICE>]``, FIPS, dual-stack and the whole credential
chain resolve the way botocore resolves them, and refreshable credentials refresh through
botocore before they expire); failures are raised as the botocore exceptions aiobotocore
raises for the same answer (``ClientError`` with the same code, ``EndpointConnectionError``,
``ReadTimeoutError``, botocore's ``ResponseParserError``, …), so one mapping serves both wires.
Integrity: DynamoDB's ``x-amz-crc32`` is checked (as botocore does), and so are SQS's
MD5 digests of bodies and attributes on send and receive (which the other AWS SDKs check
and botocore does not).
"""

import base64
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from botocore.exceptions import (
    ChecksumError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from aws.checksums import md5_of_attributes, md5_of_body
from aws.http import ConnectFailed, ConnectTimedOut, Dropped, HttpPool, ReadTimedOut
from aws.sigv4 import Signer, amz_date

#: The ways every hot call can go: ``lean`` (this module) or ``botocore`` (aiobotocore).
WIRES = ("lean", "botocore")


@dataclass(frozen=True, slots=True)
class Protocol:
    """How a service's calls travel: signing name, JSON flavour, fixed headers."""

    signing_name: str
    content_type: str
    target_prefix: str = ""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """One hot call: its API name and, for REST-JSON, its method and path."""

    name: str
    method: str = "POST"
    path: str = "/"


def _blob(value: Any) -> str:
    """orjson's fallback: a blob (bytes) travels as base64, as botocore sends it."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot send a {type(value).__name__}")


def _received_blobs(answer: dict[str, Any]) -> None:
    """ReceiveMessage: binary attribute values as bytes, as botocore parses them."""
    for message in answer.get("Messages", []):
        for value in message.get("MessageAttributes", {}).values():
            if "BinaryValue" in value:
                value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
            if "BinaryListValues" in value:
                value["BinaryListValues"] = [base64.b64decode(v) for v in value["BinaryListValues"]]


def _item_blobs(node: Any) -> None:
    """DynamoDB: every ``B`` and ``BS`` attribute value as bytes, as botocore parses them."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == "B" and isinstance(value, str):
                node[name] = base64.b64decode(value)
            elif name == "BS" and isinstance(value, list):
                node[name] = [base64.b64decode(v) for v in value]
            else:
                _item_blobs(value)
    elif isinstance(node, list):
        for value in node:
            _item_blobs(value)


PROTOCOLS = {
    "sqs": Protocol(
        "sqs",
        "application/x-amz-json-1.0",
        "AmazonSQS.",
        (("x-amzn-query-mode", "true"),),
    ),
    "dynamodb": Protocol("dynamodb", "application/x-amz-json-1.0", "DynamoDB_20120810."),
    "sesv2": Protocol("ses", "application/json"),
}

#: The calls the lean wire makes, by service and botocore's method name.
HOT: dict[str, dict[str, Operation]] = {
    "sqs": {
        "send_message_batch": Operation("SendMessageBatch"),
        "receive_message": Operation("ReceiveMessage"),
        "delete_message_batch": Operation("DeleteMessageBatch"),
        "change_message_visibility_batch": Operation("ChangeMessageVisibilityBatch"),
    },
    "dynamodb": {
        "batch_get_item": Operation("BatchGetItem"),
        "batch_write_item": Operation("BatchWriteItem"),
        "transact_write_items": Operation("TransactWriteItems"),
        "get_item": Operation("GetItem"),
        "put_item": Operation("PutItem"),
        "delete_item": Operation("DeleteItem"),
        "query": Operation("Query"),
    },
    "sesv2": {
        "send_email": Operation("SendEmail", path="/v2/email/outbound-emails"),
    },
}


class CachedCredentials:
    """Frozen credentials from a botocore credential object, looked at once a second:
    botocore refreshes refreshable ones (container, IMDS, web identity, SSO) in its advisory
    window, well before they expire."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._frozen: Any = None
        self._fresh_until = 0.0
        self._refreshable = hasattr(source, "refresh_needed")

    async def get(self) -> Any:
        """The credentials to sign the next request with."""
        now = time.monotonic()
        if now >= self._fresh_until:
            self._frozen = await self._source.get_frozen_credentials()
            self._fresh_until = now + 1.0 if self._refreshable else float("inf")
        return self._frozen


def _checked(expected: object, actual: str, what: str) -> None:
    """ChecksumError unless SQS's digest of ``what`` (when it sent one) is ``actual``."""
    if expected is not None and expected != actual:
        raise ChecksumError(checksum_type="MD5", expected_checksum=what, actual_checksum="other")


def _check_sent(params: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    sent = {entry["Id"]: entry for entry in params.get("Entries", [])}
    for ok in answer.get("Successful", []):
        entry = sent.get(ok.get("Id"))
        if entry is None:
            continue
        _checked(ok.get("MD5OfMessageBody"), md5_of_body(entry["MessageBody"]), "the body's")
        attributes = entry.get("MessageAttributes")
        if attributes:
            digest = md5_of_attributes(attributes)
            _checked(ok.get("MD5OfMessageAttributes"), digest, "the attributes'")


def _check_received(params: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    for message in answer.get("Messages", []):
        _checked(message.get("MD5OfBody"), md5_of_body(message.get("Body", "")), "the body's")
        attributes = message.get("MessageAttributes")
        if attributes:
            digest = md5_of_attributes(attributes)
            _checked(message.get("MD5OfMessageAttributes"), digest, "the attributes'")


_CHECKS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], None]] = {
    "SendMessageBatch": _check_sent,
    "ReceiveMessage": _check_received,
}


def _error(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    operation: str,
    *,
    rest: bool,
    model: Any,
) -> ClientError:
    """The ClientError botocore's JSON parsers make of an error answer."""
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error: dict[str, Any] = {
        "Message": body.get("message", body.get("Message", "")),
        "Code": "",
    }
    code = str(body.get("__type") or status).split(":", 1)[0].rsplit("#", 1)[-1]
    if rest:  # REST-JSON: the header, or the body's code, says it
        named = headers.get("x-amzn-errortype") or body.get("code", body.get("Code"))
        if isinstance(named, str):
            code = named.split(":", 1)[0].rsplit("#", 1)[-1]
    else:  # AWS JSON 1.0 of a query-compatible service (SQS): the query protocol's code
        query_error = headers.get("x-amzn-query-error", "").split(";")
        if len(query_error) == 2 and query_error[0]:
            error["QueryErrorCode"] = code
            error["Type"] = query_error[1]
            code = query_error[0]
    error["Code"] = code
    # The error's modeled fields (DynamoDB's Item, CancellationReasons, ...) as botocore
    # adds them, blobs as bytes.
    shape = model.shape_for_error_code(code) if model is not None else None
    members = shape.members if shape is not None else {}
    response: dict[str, Any] = {k: v for k, v in body.items() if k in members}
    if b'"B"' in raw or b'"BS"' in raw:
        _item_blobs(response)
    response["Error"] = error
    response["ResponseMetadata"] = {
        "RequestId": headers.get("x-amzn-requestid", ""),
        "HTTPStatusCode": status,
    }
    return ClientError(response, operation)


class LeanWire:
    """The hot calls of one service, over one pool of kept-alive connections."""

    def __init__(
        self,
        service: str,
        *,
        endpoint_url: str,
        region: str,
        credentials: Any,
        user_agent: str,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_connections: int,
        model: Any = None,
        ca_bundle: str | None = None,
    ) -> None:
        self.service = service
        #: botocore's service model: which fields an error answer's code carries.
        self._model = model
        self.operations = HOT[service]
        self._protocol = PROTOCOLS[service]
        self._endpoint = endpoint_url.rstrip("/")
        self._signer = Signer(region, self._protocol.signing_name)
        self._credentials = CachedCredentials(credentials)
        self._user_agent = user_agent
        self._http = HttpPool(
            self._endpoint,
            limit=max_connections,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            ca_bundle=ca_bundle,
        )
        base = urlsplit(self._endpoint).path.rstrip("/")
        #: Per operation: (the URL signed, the path on the request line).
        self._targets = {
            m: (self._endpoint + o.path, base + o.path) for m, o in HOT[service].items()
        }

    @classmethod
    async def beside(
        cls,
        client: Any,
        session: Any,
        *,
        user_agent: str,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_connections: int,
    ) -> "LeanWire | None":
        """The lean wire for the hot calls of aiobotocore ``client`` (opened from
        ``session``): its endpoint, region, service model, credentials and CA bundle, as
        botocore resolved them; None without credentials (botocore then says what is
        missing)."""
        credentials = await session.get_credentials()
        if credentials is None:
            return None
        meta = client.meta
        return cls(
            meta.service_model.service_name,
            endpoint_url=meta.endpoint_url,
            region=meta.region_name,
            credentials=credentials,
            user_agent=user_agent,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_connections=max_connections,
            model=meta.service_model,
            ca_bundle=session.get_config_variable("ca_bundle"),
        )

    async def close(self) -> None:
        """Close the connections."""
        self._http.close()

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Call botocore's ``method`` (``send_message_batch``, …) with botocore's parameters;
        botocore's answer, or botocore's exception for the failure."""
        operation = self.operations[method]
        body = orjson.dumps(params, default=_blob)
        url, path = self._targets[method]
        protocol = self._protocol
        headers = {"Content-Type": protocol.content_type, **dict(protocol.headers)}
        if protocol.target_prefix:
            headers["X-Amz-Target"] = protocol.target_prefix + operation.name
        credentials = await self._credentials.get()
        self._signer.sign(
            operation.method,
            url,
            headers,
            body,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            token=credentials.token,
            date=amz_date(),
        )
        headers["User-Agent"] = self._user_agent
        headers["Accept-Encoding"] = "identity"
        status, answer_headers, raw = await self._send(operation.method, url, path, headers, body)
        crc = answer_headers.get("x-amz-crc32")
        if crc is not None and zlib.crc32(raw) != int(crc):
            raise ChecksumError(
                checksum_type="CRC32", expected_checksum=crc, actual_checksum=zlib.crc32(raw)
            )
        if status >= 300:
            raise _error(
                status,
                answer_headers,
                raw,
                operation.name,
                rest=not protocol.target_prefix,
                model=self._model,
            )
        try:
            answer = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise ResponseParserError(f"{operation.name}: not JSON") from exc
        if not isinstance(answer, dict):
            raise ResponseParserError(f"{operation.name}: not an object")
        if operation.name == "ReceiveMessage":
            _received_blobs(answer)
        elif self.service == "dynamodb" and (b'"B"' in raw or b'"BS"' in raw):
            _item_blobs(answer)
        check = _CHECKS.get(operation.name)
        if check is not None:
            check(params, answer)
        answer["ResponseMetadata"] = {
            "RequestId": answer_headers.get("x-amzn-requestid", ""),
            "HTTPStatusCode": status,
        }
        return answer

    async def _send(
        self, method: str, url: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP exchange; failures as the botocore exceptions aiobotocore raises for
        them (except that a connection lost after the request was written reads as no
        answer, not as an endpoint that could not be reached)."""
        try:
            return await self._http.request(method, path, headers, body)
        except ConnectTimedOut as exc:
            raise ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except ConnectFailed as exc:
            raise EndpointConnectionError(endpoint_url=url, error=exc) from exc
        except ReadTimedOut as exc:
            raise ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except Dropped as exc:
            raise ConnectionClosedError(endpoint_url=url, error=exc) from exc
