"""Application-level encryption of envelopes: AES-256-GCM, keys by id for rotation.

``MAILPOOL_ENCRYPTION_KEYS`` holds ``id:base64-key`` pairs, comma-separated. The first key
seals new envelopes; every key listed opens them, so a key is rotated by putting the new
one first and dropping the old one once no message sealed with it remains (the queue's
retention, 4 days by default, plus its DLQ's). With no keys, envelopes are plain JSON.
"""

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.settings import SettingError, env_opt

NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed envelope that these keys cannot open."""


def new_key(key_id: str) -> str:
    """A fresh ``id:base64-key`` entry for MAILPOOL_ENCRYPTION_KEYS."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


class Keyring:
    """AES-256-GCM keys by id: the first seals, any opens."""

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.active = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Keyring | None":
        """The keyring MAILPOOL_ENCRYPTION_KEYS describes, or None when it is unset."""
        raw = (env_opt(environ, "MAILPOOL_ENCRYPTION_KEYS") or "").strip()
        if not raw:
            return None
        keys = []
        for entry in raw.split(","):
            key_id, _, encoded = entry.strip().partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (ValueError, binascii.Error):
                key = b""
            if not key_id or len(key) != 32:
                raise SettingError(
                    "MAILPOOL_ENCRYPTION_KEYS entries must be id:base64 of 32 bytes "
                    "(mailpool keys encryption makes one)"
                )
            keys.append((key_id, key))
        return cls(keys)

    def seal(self, plaintext: bytes, aad: bytes) -> dict[str, str]:
        """Encrypt ``plaintext`` bound to ``aad`` with the active key."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[self.active].encrypt(nonce, plaintext, aad)
        return {
            "kid": self.active,
            "n": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(sealed).decode(),
        }

    def open(self, sealed: Mapping[str, Any], aad: bytes) -> bytes:
        """Decrypt; SealError when the key is unknown or the ciphertext was altered."""
        cipher = self._ciphers.get(str(sealed.get("kid")))
        if cipher is None:
            raise SealError("sealed with a key this keyring does not hold")
        try:
            return cipher.decrypt(
                base64.b64decode(sealed["n"]), base64.b64decode(sealed["ct"]), aad
            )
        except (InvalidTag, KeyError, ValueError, binascii.Error, TypeError):
            raise SealError("the sealed envelope does not open") from None
