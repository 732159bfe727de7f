"""Signatures from the state secret: signed email ids and one-click unsubscribe tokens.

A signed id is the usual id (48 bits of milliseconds, 80 random bits) followed by 32 bits
of HMAC-SHA256 over the id and the API-key scope it was issued to: intake can tell, before
any record of the email exists, that it issued this id to this key, and when. An
unsubscribe token is a Fernet token (AES-128-CBC, authenticated by HMAC-SHA256) of the
scope, the list, the address and the email id: the link names them without exposing them,
and a forged or altered token does not open.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_SIGNED_ID = re.compile(r"[0-9a-f]{40}")


def _derive(secret: bytes, label: str) -> bytes:
    return hmac.new(secret, label.encode(), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """What an unsubscribe token names."""

    scope: str
    list: str
    address: str
    email_id: str


class Signer:
    """Signs ids and unsubscribe tokens with keys derived from ``secret``; checks them with
    those of ``previous`` secrets too, so that rotating the secret breaks no id or link."""

    def __init__(self, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        everyone = (secret, *previous)
        self._ids = [_derive(s, "mailpool/ids/v1") for s in everyone]
        self._fernet = MultiFernet(
            [
                Fernet(base64.urlsafe_b64encode(_derive(s, "mailpool/unsubscribe/v1")))
                for s in everyone
            ]
        )

    @staticmethod
    def _mac(key: bytes, scope: str, head: str) -> str:
        return hmac.new(key, f"{scope}\x00{head}".encode(), hashlib.sha256).hexdigest()[:8]

    def new_id(self, scope: str) -> str:
        """A fresh id for ``scope``: 40 hex digits, time-ordered, signed."""
        head = f"{int(time.time() * 1000) & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(10)}"
        return head + self._mac(self._ids[0], scope, head)

    def issued_at(self, scope: str, email_id: str) -> float | None:
        """When ``email_id`` was issued to ``scope``; None if it was not (or is not an id)."""
        if not _SIGNED_ID.fullmatch(email_id):
            return None
        head, mac = email_id[:32], email_id[32:]
        if not any(hmac.compare_digest(mac, self._mac(key, scope, head)) for key in self._ids):
            return None
        return int(head[:12], 16) / 1000

    def unsubscribe_token(self, what: Unsubscribe) -> str:
        """The token of an unsubscribe link (URL-safe)."""
        payload = orjson.dumps([what.scope, what.list, what.address, what.email_id])
        return self._fernet.encrypt(payload).decode().rstrip("=")

    def read_unsubscribe_token(self, token: str) -> Unsubscribe | None:
        """What a token names; None when it is forged, altered or malformed."""
        try:
            padded = token + "=" * (-len(token) % 4)
            scope, name, address, email_id = orjson.loads(self._fernet.decrypt(padded.encode()))
        except (InvalidToken, ValueError, TypeError, orjson.JSONDecodeError):
            return None
        return Unsubscribe(str(scope), str(name), str(address), str(email_id))
