"""The MD5 digests SQS returns with messages: the embedded engine computes them, the lean
wire verifies them (as the SDKs other than botocore do)."""

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any


def md5_of_body(body: str) -> str:
    """MD5OfMessageBody: hex MD5 of the UTF-8 body."""
    return hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """MD5OfMessageAttributes, by the SDKs' algorithm: names sorted, each field length-prefixed."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value["DataType"])
        digest.update(_field(name.encode()))
        digest.update(_field(data_type.encode()))
        if "StringValue" in value:
            digest.update(b"\x01")
            digest.update(_field(str(value["StringValue"]).encode()))
        else:
            digest.update(b"\x02")
            binary = value["BinaryValue"]  # bytes, or base64 as the JSON wire carries it
            data = base64.b64decode(binary) if isinstance(binary, str) else bytes(binary)
            digest.update(_field(data))
    return digest.hexdigest()
