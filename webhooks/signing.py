"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signature is ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where the key is
the secret's bytes (``whsec_`` + base64); any Standard Webhooks or Svix verifier accepts it.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence

PREFIX = "whsec_"
#: How far a receiver's clock may be from the signature's timestamp.
TOLERANCE_S = 300


class SignatureError(ValueError):
    """A request whose Standard Webhooks headers do not verify."""


def new_secret() -> str:
    """A fresh secret: ``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ValueError when it is not one."""
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret holds at least 16 bytes")
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{id}.{timestamp}.{body}``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(
    key: bytes,
    message_id: str,
    body: bytes,
    now: float | None = None,
    previous: Sequence[bytes] = (),
) -> dict[str, str]:
    """The three headers that sign ``body`` as message ``message_id``: one signature with
    ``key`` and one with each ``previous`` key (a secret being rotated out), space-separated
    as Standard Webhooks allows, so a receiver with either secret verifies it."""
    timestamp = int(time.time() if now is None else now)
    signatures = [signature(k, message_id, timestamp, body) for k in (key, *previous)]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def secret_keys(secrets: str) -> tuple[bytes, ...]:
    """The keys of one or more ``whsec_`` secrets separated by spaces or commas (the first
    is the current one; the others are being rotated out); ValueError when one is not."""
    keys = tuple(secret_key(part) for part in secrets.replace(",", " ").split())
    if not keys:
        raise ValueError("a webhook secret starts with whsec_")
    return keys


def verify(key: bytes, received: Mapping[str, str], body: bytes, now: float | None = None) -> str:
    """Check a request's headers against ``body``; its ``webhook-id``, else SignatureError."""
    lowered = {k.lower(): v for k, v in received.items()}
    message_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    if not message_id or not stamp.isdigit():
        raise SignatureError("missing or malformed webhook headers")
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_S:
        raise SignatureError("the timestamp is too far from now")
    expected = signature(key, message_id, timestamp, body).encode()
    for candidate in lowered.get("webhook-signature", "").split():
        if hmac.compare_digest(candidate.encode(), expected):
            return message_id
    raise SignatureError("no signature matches")
