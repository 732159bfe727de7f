"""Signature Version 4, signed the way botocore's ``SigV4Auth`` signs.

The signing key is derived once per (secret, day, region, service) and kept; a request then
costs two SHA-256 digests (body, canonical request) and one HMAC. A property test holds the
result byte for byte to botocore's ``SigV4Auth`` (``tests/aws/test_sigv4.py``).
"""

import functools
import hashlib
import hmac
import time
from collections.abc import MutableMapping
from urllib.parse import quote, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST
from botocore.utils import normalize_url_path

_UNSIGNED = frozenset(SIGNED_HEADERS_BLACKLIST)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_KEYS_KEPT = 64


@functools.lru_cache(maxsize=256)
def _url_parts(url: str) -> tuple[str, str, str]:
    """(host header, canonical path, canonical query) of ``url``."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    path = quote(normalize_url_path(parts.path), safe="/~")
    query = ""
    if parts.query:
        pairs = sorted(pair.partition("=")[::2] for pair in parts.query.split("&"))
        query = "&".join(f"{k}={v}" for k, v in pairs)
    return host, path, query


def amz_date(now: float | None = None) -> str:
    """The ``X-Amz-Date`` of ``now`` (epoch seconds; default: the current time)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


class Signer:
    """Signs requests for one (region, service) with whatever credentials each call brings."""

    def __init__(self, region: str, service: str) -> None:
        self.region = region
        self.service = service
        self._keys: dict[tuple[str, str], bytes] = {}

    def _key(self, secret: str, day: str) -> bytes:
        found = self._keys.get((secret, day))
        if found is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            found = hmac.digest(f"AWS4{secret}".encode(), day.encode(), "sha256")
            for part in (self.region, self.service, "aws4_request"):
                found = hmac.digest(found, part.encode(), "sha256")
            self._keys[(secret, day)] = found
        return found

    def sign(
        self,
        method: str,
        url: str,
        headers: MutableMapping[str, str],
        body: bytes,
        *,
        access_key: str,
        secret_key: str,
        token: str | None,
        date: str,
    ) -> None:
        """Add ``X-Amz-Date``, the session token (if any) and ``Authorization`` to
        ``headers``: their names as botocore writes them, signed as botocore signs."""
        headers["X-Amz-Date"] = date
        if token:
            headers["X-Amz-Security-Token"] = token
        host, path, query = _url_parts(url)
        signed: dict[str, list[str]] = {}
        for name, value in headers.items():
            lname = name.lower()
            if lname not in _UNSIGNED:
                signed.setdefault(lname, []).append(value)
        signed.setdefault("host", [host])
        names = sorted(signed)
        canonical_headers = "".join(
            f"{n}:{','.join(' '.join(v.split()) for v in signed[n])}\n" for n in names
        )
        signed_names = ";".join(names)
        payload = headers.get("X-Amz-Content-SHA256") or (
            hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        )
        canonical = (
            f"{method.upper()}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{payload}"
        )
        day = date[:8]
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = (
            f"AWS4-HMAC-SHA256\n{date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._key(secret_key, day), to_sign.encode(), "sha256").hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
