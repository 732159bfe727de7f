"""API keys: ``Authorization: Bearer <key>`` checked against SHA-256 digests in constant time.

Keys come from ``MAILPOOL_API_KEYS`` (comma-separated keys), ``MAILPOOL_API_KEYS_FILE``
(lines ``name:sha256-hex``, ``#`` comments; ``mailpool keys new`` makes them) or
``MAILPOOL_API_KEY_DIGESTS`` (the same ``name:sha256-hex`` entries, separated by commas or
newlines: what a secret store hands a task), all of them at once. Only digests are held in
memory; several keys are admitted together, so a key is rotated by adding the new one,
moving the client over, then removing the old one: the new key takes the old one's
*name*, since the name is the client's scope (its emails' status, its suppression list,
idempotency, quotas, webhook filters). Names are 1-64 letters, digits, ``_`` or ``-``; a
key given without one gets a name of its own from its digest, so distinct keys never
share a scope by accident. Without any key the intake is open, and then listens on loopback only
unless ``MAILPOOL_AUTH=off`` says an upstream proxy authenticates.
"""

import hashlib
import hmac
import os
import pathlib
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.network import is_loopback
from core.settings import SettingError, env_opt, env_str
from intake.errors import ApiError

ANONYMOUS = "default"
#: A key's name: its scope everywhere it travels (SES tag values allow only these).
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_UNAUTHORIZED = ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer)")


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A named key, known by its SHA-256 digest only."""

    name: str
    digest: bytes


def digest(key: str) -> bytes:
    """SHA-256 of a key."""
    return hashlib.sha256(key.encode()).digest()


def new_key(name: str) -> tuple[str, str]:
    """A fresh key and the keys-file line that admits it."""
    key = f"mp_{secrets.token_urlsafe(32)}"
    return key, f"{name}:{digest(key).hex()}"


def check_name(name: str, where: str = "--name") -> str:
    """``name`` if it can be a key's name: it is the key's scope, written into SES message
    tags (letters, digits, ``_`` and ``-`` only) and state keys; SettingError otherwise."""
    if not _NAME.fullmatch(name):
        raise SettingError(
            f"{where}: a key's name must be 1-64 letters, digits, '_' or '-' (got {name!r})"
        )
    return name


def unnamed(key_digest: bytes) -> str:
    """The name of a key given without one: its own, from its digest, so that two unnamed
    keys never share a scope."""
    return f"key-{key_digest.hex()[:12]}"


def _parse_digests(lines: Sequence[str], where: str) -> list[ApiKey]:
    keys = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, hexdigest = line.rpartition(":")
        try:
            key_digest = bytes.fromhex(hexdigest)
        except ValueError:
            key_digest = b""
        if len(key_digest) != hashlib.sha256().digest_size:
            raise SettingError(f"{where}:{number}: expected name:sha256-hex")
        keys.append(
            ApiKey(
                check_name(name, f"{where}:{number}") if name else unnamed(key_digest), key_digest
            )
        )
    return keys


class Authenticator:
    """Checks bearer keys; ``enabled`` is False when none are configured."""

    def __init__(self, keys: Sequence[ApiKey], *, required: bool = True) -> None:
        self.keys = list(keys)
        self.enabled = required and bool(self.keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "Authenticator":
        """Keys from MAILPOOL_API_KEYS / MAILPOOL_API_KEYS_FILE; MAILPOOL_AUTH=off disables."""
        mode = env_str(environ, "MAILPOOL_AUTH", "auto")
        if mode not in ("auto", "off"):
            raise SettingError(f"MAILPOOL_AUTH must be auto or off, got {mode!r}")
        raw = [k.strip() for k in (env_opt(environ, "MAILPOOL_API_KEYS") or "").split(",")]
        keys = [ApiKey(unnamed(digest(k)), digest(k)) for k in raw if k]
        path = env_opt(environ, "MAILPOOL_API_KEYS_FILE")
        if path:
            try:
                lines = pathlib.Path(path).read_text().splitlines()
            except OSError as exc:
                message = f"MAILPOOL_API_KEYS_FILE: cannot read {path} ({exc.strerror})"
                raise SettingError(message) from None
            keys.extend(_parse_digests(lines, path))
        digests = env_opt(environ, "MAILPOOL_API_KEY_DIGESTS")
        if digests:
            entries = digests.replace(",", "\n").splitlines()
            keys.extend(_parse_digests(entries, "MAILPOOL_API_KEY_DIGESTS"))
        return cls(keys, required=mode != "off")

    def shared_names(self) -> dict[str, int]:
        """Names held by more than one key, with how many: one client's keys during a
        rotation (the new key takes the old one's name), or a mistake worth a look."""
        counts = Counter(key.name for key in self.keys)
        return {name: count for name, count in sorted(counts.items()) if count > 1}

    def identify(self, authorization: str | None) -> str:
        """The calling client's name, or ApiError 401 (never saying which part failed)."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        presented = digest(token.strip()) if scheme.lower() == "bearer" else b""
        found = None
        for key in self.keys:  # every key is compared, so timing does not tell which matched
            if hmac.compare_digest(presented, key.digest):
                found = key
        if found is None:
            raise _UNAUTHORIZED
        return found.name


def check_exposure(auth: Authenticator, host: str, environ: Mapping[str, str] = os.environ) -> None:
    """Refuse to serve without keys on anything but loopback, unless MAILPOOL_AUTH=off."""
    if auth.enabled or is_loopback(host) or env_str(environ, "MAILPOOL_AUTH", "auto") == "off":
        return
    raise SettingError(
        f"refusing to listen on {host} without API keys: set MAILPOOL_API_KEYS, "
        "MAILPOOL_API_KEYS_FILE or MAILPOOL_API_KEY_DIGESTS, or MAILPOOL_AUTH=off if a proxy "
        "in front authenticates"
    )
