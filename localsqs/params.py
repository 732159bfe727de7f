"""Reading and validating SQS request parameters (JSON protocol)."""

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

import orjson

from aws.checksums import md5_of_attributes
from localsqs.errors import SqsError, invalid, missing

# Characters an SQS message may hold (XML 1.0's Char production).
_BAD_BODY = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ID_CHARS = re.compile(r"""[A-Za-z0-9!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}""")
_ENTRY_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
MAX_BATCH_BYTES = 1_048_576


def text(params: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    """A string parameter."""
    value = params.get(name)
    if value is None:
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Value for parameter {name} is invalid.")
    return value


def integer(params: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    """An integer parameter within ``low..high``."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(
            f"Value {value} for parameter {name} is invalid. Reason: Must be between "
            f"{low} and {high}, if provided."
        )
    return value


def string_map(params: Mapping[str, Any], name: str) -> dict[str, str]:
    """A map of strings (e.g. queue Attributes)."""
    value = params.get(name) or {}
    if not isinstance(value, dict):
        raise invalid(f"Value for parameter {name} is invalid.")
    return {str(k): v for k, v in value.items()}


def names(params: Mapping[str, Any], *keys: str) -> list[str]:
    """The union of the string lists under ``keys``."""
    found: list[str] = []
    for key in keys:
        value = params.get(key) or []
        if not isinstance(value, list):
            raise invalid(f"Value for parameter {key} is invalid.")
        found.extend(str(v) for v in value)
    return found


def body(value: Any) -> str:
    """A message body: non-empty, of characters SQS allows."""
    if not isinstance(value, str) or not value:
        raise missing("MessageBody")
    if _BAD_BODY.search(value):
        raise SqsError(
            "InvalidMessageContents",
            "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | "
            "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
        )
    return value


def fifo_id(value: Any, name: str) -> str | None:
    """MessageGroupId / MessageDeduplicationId: 1-128 ASCII letters, digits, punctuation."""
    if value is None:
        return None
    if not isinstance(value, str) or not _ID_CHARS.fullmatch(value):
        raise invalid(f"Value {value!r} for parameter {name} is invalid.")
    return value


def entry_ids(entries: Any, name: str = "Entries") -> list[dict[str, Any]]:
    """The entries of a batch call: 1-10 of them, with distinct, well-formed Ids."""
    if not isinstance(entries, list) or not entries:
        raise SqsError("EmptyBatchRequest", "There should be at least one entry in the request.")
    if len(entries) > 10:
        raise SqsError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are 10. You have sent {len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry.get("Id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, str) or not _ENTRY_ID.fullmatch(entry_id):
            raise SqsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
            )
        if entry_id in seen:
            raise SqsError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)
    return entries


def message_attributes(value: Any) -> tuple[str | None, int, str | None]:
    """(stored JSON, size in bytes, MD5) of MessageAttributes; (None, 0, None) if none."""
    if not value:
        return None, 0, None
    if not isinstance(value, dict):
        raise invalid("MessageAttributes must be a map.")
    if len(value) > 10:
        raise invalid(
            f"Number of message attributes [{len(value)}] exceeds the allowed maximum [10]."
        )
    size = 0
    decoded: dict[str, dict[str, Any]] = {}
    for name, attribute in value.items():
        if not _ATTRIBUTE_NAME.fullmatch(name) or name.lower().startswith(("aws.", "amazon.")):
            raise invalid(f"Message attribute name '{name}' is invalid.")
        if not isinstance(attribute, dict) or not isinstance(attribute.get("DataType"), str):
            raise invalid(f"The message attribute '{name}' must contain a DataType.")
        data_type = attribute["DataType"]
        base = data_type.split(".", 1)[0]
        if base in ("String", "Number") and isinstance(attribute.get("StringValue"), str):
            decoded[name] = {"DataType": data_type, "StringValue": attribute["StringValue"]}
            size += len(attribute["StringValue"].encode())
        elif base == "Binary" and isinstance(attribute.get("BinaryValue"), str):
            try:
                raw = base64.b64decode(attribute["BinaryValue"], validate=True)
            except (ValueError, binascii.Error):
                raise invalid(f"The message attribute '{name}' has an invalid value.") from None
            decoded[name] = {"DataType": data_type, "BinaryValue": raw}
            size += len(raw)
        else:
            raise invalid(
                f"The message attribute '{name}' with type '{base}' must use field "
                f"'{'Binary' if base == 'Binary' else 'String'}'."
            )
        size += len(name.encode()) + len(data_type.encode())
    stored = {
        n: {"DataType": a["DataType"], "StringValue": a["StringValue"]}
        if "StringValue" in a
        else {"DataType": a["DataType"], "BinaryValue": base64.b64encode(a["BinaryValue"]).decode()}
        for n, a in decoded.items()
    }
    return orjson.dumps(stored).decode(), size, md5_of_attributes(decoded)


def select_attributes(stored: str | None, wanted: list[str]) -> dict[str, Any] | None:
    """The message attributes a receive asked for (names, ``All``, ``.*`` or ``prefix.*``)."""
    if stored is None or not wanted:
        return None
    attributes: dict[str, Any] = orjson.loads(stored)
    if "All" in wanted or ".*" in wanted:
        return attributes
    chosen = {}
    for name, value in attributes.items():
        for pattern in wanted:
            if name == pattern or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
                chosen[name] = value
                break
    return chosen or None


def decoded_for_md5(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Attributes as stored (Binary base64) → as the MD5 algorithm reads them (bytes)."""
    return {
        n: {"DataType": a["DataType"], "BinaryValue": base64.b64decode(a["BinaryValue"])}
        if "BinaryValue" in a
        else a
        for n, a in attributes.items()
    }
