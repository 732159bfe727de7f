"""Message IDs: random and time-ordered, or derived from an Idempotency-Key."""

import hashlib
import re
import secrets
import time

MAX_KEY_LENGTH = 255
_KEY = re.compile(r"[\x21-\x7e]+")


def new_id() -> str:
    """A fresh id: 48 bits of milliseconds then 80 random bits, as 32 hex digits."""
    return f"{int(time.time() * 1000) & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(10)}"


def valid_key(key: str) -> bool:
    """Whether ``key`` is a usable Idempotency-Key: 1-255 printable ASCII characters."""
    return len(key) <= MAX_KEY_LENGTH and _KEY.fullmatch(key) is not None


def idempotent_id(scope: str, key: str) -> str:
    """The id for ``key`` within ``scope`` (the API client): the same every time."""
    digest = hashlib.blake2b(f"{scope}\x00{key}".encode(), digest_size=16)
    return digest.hexdigest()


def batch_entry_key(key: str, index: int) -> str:
    """The key of entry ``index`` of a batch sent with ``key``. A space cannot be part of
    an Idempotency-Key, so no single email's key (``order-7:0``, say) names a batch entry."""
    return f"{key} {index}"
