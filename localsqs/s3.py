"""The S3 REST protocol over aiohttp, path-style: what mailpool's body store, boto3,
aiobotocore and the AWS CLI send for buckets (create, head, delete, lifecycle) and objects
(put, get, head, delete).

Request bodies may come whole or ``aws-chunked`` (signed chunks, or unsigned with a trailing
checksum, as botocore streams them); either way the checksums a request carries
(``Content-MD5``, ``x-amz-checksum-crc32``, ``-sha1``, ``-sha256``) are verified before
anything is stored. Signatures are not checked: like the rest of the engine, it serves
loopback only unless told otherwise.
"""

import base64
import hashlib
import uuid
import zlib
from email.utils import formatdate
from typing import Any
from xml.etree import ElementTree

from aiohttp import web

from localsqs.errors import S3Error
from localsqs.objects import Objects, Stored

OBJECTS = web.AppKey("objects", Objects)
#: The largest object the engine takes (the largest email, base64, is about 14 MB).
MAX_OBJECT_BYTES = 64 * 1024 * 1024
#: What such an object may take on the wire: aws-chunked framing (chunk headers with their
#: signatures, trailers) adds far less than this margin.
_MAX_WIRE_BYTES = MAX_OBJECT_BYTES + 1024 * 1024
_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_XML = "application/xml"
_CHECKSUMS = {
    "crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}


def routes(app: web.Application, objects: Objects) -> None:
    """Serve buckets and objects on ``app`` (beside SQS's and DynamoDB's ``POST /``)."""
    app[OBJECTS] = objects
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        app.router.add_route(method, "/{bucket}", bucket_request)
        app.router.add_route(method, "/{bucket}/{key:.+}", object_request)


def _error(exc: S3Error, head: bool) -> web.Response:
    if head:  # HEAD answers carry no body: the status says it
        return web.Response(status=exc.status)
    root = ElementTree.Element("Error")
    for name, value in (("Code", exc.code), ("Message", exc.message), *exc.fields.items()):
        ElementTree.SubElement(root, name).text = value
    ElementTree.SubElement(root, "RequestId").text = uuid.uuid4().hex
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)
    return web.Response(status=exc.status, body=body, content_type=_XML)


async def bucket_request(request: web.Request) -> web.StreamResponse:
    objects = request.app[OBJECTS]
    name = request.match_info["bucket"]
    try:
        if "lifecycle" in request.query:
            return await _lifecycle(request, objects, name)
        if request.method == "PUT":
            await _read_body(request)  # a CreateBucketConfiguration, when given
            await objects.create_bucket(name)
            return web.Response(headers={"Location": f"/{name}"})
        if request.method == "HEAD":
            await objects.require_bucket(name)
            return web.Response(headers={"x-amz-bucket-region": "us-east-1"})
        if request.method == "DELETE":
            await objects.delete_bucket(name)
            return web.Response(status=204)
        raise S3Error("NotImplemented", "localsqs serves no listing of buckets' objects", 501)
    except S3Error as exc:
        return _error(exc, request.method == "HEAD")


async def object_request(request: web.Request) -> web.StreamResponse:
    objects = request.app[OBJECTS]
    bucket, key = request.match_info["bucket"], request.match_info["key"]
    try:
        if request.method == "PUT":
            return await _put(request, objects, bucket, key)
        if request.method == "DELETE":
            await objects.delete(bucket, key)
            return web.Response(status=204)
        if request.method == "HEAD":
            return web.Response(headers=_headers(await objects.head(bucket, key)))
        stored, data = await objects.get(bucket, key)
        return web.Response(body=data, headers=_headers(stored))
    except S3Error as exc:
        return _error(exc, request.method == "HEAD")


def _headers(stored: Stored) -> dict[str, str]:
    headers = {
        "ETag": f'"{stored.etag}"',
        "Last-Modified": formatdate(stored.modified, usegmt=True),
        "Content-Type": stored.content_type,
        "Content-Length": str(stored.size),
        "Accept-Ranges": "bytes",
    }
    if stored.encryption:
        headers["x-amz-server-side-encryption"] = stored.encryption
    return headers


async def _put(request: web.Request, objects: Objects, bucket: str, key: str) -> web.Response:
    data, trailers = await _read_body(request)
    checksum = _verify(request, data, trailers)
    encryption = request.headers.get("x-amz-server-side-encryption")
    if encryption not in (None, "AES256"):
        raise S3Error("InvalidArgument", "localsqs encrypts nothing: only AES256 is accepted")
    stored = await objects.put(
        bucket,
        key,
        data,
        content_type=request.headers.get("Content-Type") or "binary/octet-stream",
        checksum=checksum,
        encryption=encryption,
    )
    headers = {
        "ETag": f'"{stored.etag}"',
        **{f"x-amz-checksum-{k}": v for k, v in checksum.items()},
    }
    if encryption:
        headers["x-amz-server-side-encryption"] = encryption
    return web.Response(headers=headers)


async def _read_body(request: web.Request) -> tuple[bytes, dict[str, str]]:
    """The request's payload (``aws-chunked`` decoded) and any trailing headers."""
    declared = request.content_length or 0
    if declared > _MAX_WIRE_BYTES:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    raw = await _read_bounded(request)
    if "aws-chunked" not in request.headers.get("Content-Encoding", ""):
        return _sized(raw), {}
    data, trailers = _dechunk(raw)
    expected = request.headers.get("x-amz-decoded-content-length")
    if expected is not None and int(expected) != len(data):
        raise S3Error("IncompleteBody", "The request body is shorter than declared")
    return _sized(data), trailers


async def _read_bounded(request: web.Request) -> bytes:
    """The body as sent, refused as soon as it passes what the largest object takes on the
    wire (a chunked upload declares no length, so the count is kept while reading)."""
    parts: list[bytes] = []
    received = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        received += len(chunk)
        if received > _MAX_WIRE_BYTES:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        parts.append(chunk)
    return b"".join(parts)


def _sized(data: bytes) -> bytes:
    if len(data) > MAX_OBJECT_BYTES:
        raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    return data


def _dechunk(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """Decode ``aws-chunked``: ``<hex size>[;chunk-signature=…]\\r\\n<bytes>\\r\\n`` … a zero
    chunk, then trailing ``name:value`` lines and an empty one."""
    parts: list[bytes] = []
    at = 0
    while True:
        end = raw.find(b"\r\n", at)
        if end < 0:
            raise S3Error("IncompleteBody", "The aws-chunked body ends inside a chunk header")
        size = int(raw[at:end].split(b";", 1)[0] or b"0", 16)
        at = end + 2
        if size == 0:
            break
        parts.append(raw[at : at + size])
        if len(parts[-1]) != size or raw[at + size : at + size + 2] != b"\r\n":
            raise S3Error("IncompleteBody", "The aws-chunked body ends inside a chunk")
        at += size + 2
    trailers: dict[str, str] = {}
    for line in raw[at:].split(b"\r\n"):
        name, colon, value = line.decode("latin-1").partition(":")
        if colon:
            trailers[name.strip().lower()] = value.strip()
    return b"".join(parts), trailers


def _verify(request: web.Request, data: bytes, trailers: dict[str, str]) -> dict[str, str]:
    """Check every checksum the request carries; the ones to keep with the object."""
    md5 = request.headers.get("Content-MD5")
    if md5 is not None and base64.b64decode(md5) != hashlib.md5(data).digest():
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received")
    given = {**{k.lower(): v for k, v in request.headers.items()}, **trailers}
    kept: dict[str, str] = {}
    for header, value in given.items():
        if not header.startswith("x-amz-checksum-") or header == "x-amz-checksum-type":
            continue
        algorithm = header.removeprefix("x-amz-checksum-")
        compute = _CHECKSUMS.get(algorithm)
        if compute is None:
            raise S3Error(
                "InvalidRequest",
                f"localsqs verifies CRC32, SHA1 and SHA256 checksums, not {algorithm.upper()}",
            )
        if base64.b64encode(compute(data)).decode() != value:
            raise S3Error(
                "BadDigest",
                f"The {algorithm.upper()} you specified did not match the calculated checksum.",
            )
        kept[algorithm] = value
    return kept


async def _lifecycle(request: web.Request, objects: Objects, name: str) -> web.Response:
    if request.method == "PUT":
        body, _ = await _read_body(request)
        await objects.set_lifecycle(name, _parse_rules(body))
        return web.Response()
    if request.method == "GET":
        return web.Response(body=_rules_xml(await objects.lifecycle(name)), content_type=_XML)
    raise S3Error("NotImplemented", f"localsqs does not {request.method} a lifecycle", 501)


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    """The children named ``name``, with or without S3's namespace."""
    return [child for child in element if child.tag.rsplit("}", 1)[-1] == name]


def _text(element: ElementTree.Element, path: str) -> str | None:
    for part in path.split("/"):
        found = _children(element, part)
        if not found:
            return None
        element = found[0]
    return (element.text or "").strip() or None


def _parse_rules(body: bytes) -> list[dict[str, Any]]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed") from None
    rules = []
    for rule in _children(root, "Rule"):
        days = _text(rule, "Expiration/Days")
        rules.append(
            {
                "id": _text(rule, "ID") or "",
                "status": _text(rule, "Status") or "",
                "prefix": _text(rule, "Filter/Prefix") or _text(rule, "Prefix") or "",
                "days": int(days) if days else None,
            }
        )
    if not rules:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed")
    return rules


def _rules_xml(rules: list[dict[str, Any]]) -> bytes:
    root = ElementTree.Element("LifecycleConfiguration", xmlns=_NS)
    for rule in rules:
        element = ElementTree.SubElement(root, "Rule")
        ElementTree.SubElement(element, "ID").text = rule["id"]
        ElementTree.SubElement(ElementTree.SubElement(element, "Filter"), "Prefix").text = rule[
            "prefix"
        ]
        ElementTree.SubElement(element, "Status").text = rule["status"]
        if rule["days"]:
            expiration = ElementTree.SubElement(element, "Expiration")
            ElementTree.SubElement(expiration, "Days").text = str(rule["days"])
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)
