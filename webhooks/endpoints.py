"""Webhook endpoints: who gets which events, configured by the operator.

``MAILPOOL_WEBHOOKS_FILE`` names a JSON file::

    {"endpoints": [
      {"name": "crm", "url": "https://hooks.example.com/mailpool", "secret": "whsec_…",
       "events": ["email.bounced", "email.complained"], "keys": ["shop"]}
    ]}

``events`` (default: every type) and ``keys`` (API-key names whose emails it receives;
default: all) filter; ``allow_http`` permits a plain-HTTP URL and ``internal`` permits
loopback, private, link-local and cloud-metadata addresses (both off by default). The
simplest setup, one endpoint for every event, comes from the environment alone:
``MAILPOOL_WEBHOOK_URL``, ``MAILPOOL_WEBHOOK_SECRET`` and, for local use and tests,
``MAILPOOL_WEBHOOK_ALLOW_PRIVATE=true`` (plain HTTP and internal addresses). A ``secret``
may name several, space-separated, the current one first: requests are then signed with
each, so an endpoint's secret is rotated without a moment where its receiver refuses them.
"""

import os
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from core.events import TYPES
from core.settings import SettingError, env_bool, env_opt
from webhooks.signing import secret_keys

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """One receiver of events."""

    name: str
    url: str
    key: bytes
    #: Event types it receives; None: every type.
    events: frozenset[str] | None = None
    #: API-key names whose emails' events it receives; None: all.
    keys: frozenset[str] | None = None
    allow_http: bool = False
    internal: bool = False
    #: Keys of secrets being rotated out: requests are signed with these too.
    previous: tuple[bytes, ...] = ()

    def wants(self, event_type: str, scope: str | None) -> bool:
        """Whether an event of ``event_type`` about an email sent with ``scope`` is for it."""
        if self.events is not None and event_type not in self.events:
            return False
        return self.keys is None or (scope is not None and scope in self.keys)


def _endpoint(raw: Any, where: str) -> Endpoint:
    if not isinstance(raw, dict):
        raise SettingError(f"{where}: an endpoint is a JSON object")
    unknown = set(raw) - {"name", "url", "secret", "events", "keys", "allow_http", "internal"}
    if unknown:
        raise SettingError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name, url, secret = raw.get("name"), raw.get("url"), raw.get("secret")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingError(f"{where}: name must be 1-64 letters, digits, '.', '_' or '-'")
    if not isinstance(url, str):
        raise SettingError(f"{where} ({name}): url is required")
    allow_http = raw.get("allow_http", False) is True
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingError(f"{where} ({name}): url must be an http(s) URL")
    if parts.scheme == "http" and not allow_http:
        raise SettingError(f"{where} ({name}): plain http needs allow_http (HTTPS only otherwise)")
    try:
        key, *previous = secret_keys(secret if isinstance(secret, str) else "")
    except ValueError as exc:
        raise SettingError(f"{where} ({name}): secret: {exc}") from None
    events, keys = _filters(raw, f"{where} ({name})")
    return Endpoint(
        name=name,
        url=url,
        key=key,
        events=events,
        keys=keys,
        allow_http=allow_http,
        internal=raw.get("internal", False) is True,
        previous=tuple(previous),
    )


def _filters(raw: dict[str, Any], where: str) -> tuple[frozenset[str] | None, ...]:
    events, keys = raw.get("events"), raw.get("keys")
    if events is not None and not (isinstance(events, list) and set(events) <= set(TYPES)):
        raise SettingError(f"{where}: events must list types of {', '.join(TYPES)}")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise SettingError(f"{where}: keys must list API-key names")
    return (
        None if events is None else frozenset(events),
        None if keys is None else frozenset(keys),
    )


def load(path: pathlib.Path) -> list[Endpoint]:
    """The endpoints a webhooks file lists; SettingError naming the problem."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SettingError(
            f"MAILPOOL_WEBHOOKS_FILE: cannot read {path} ({type(exc).__name__})"
        ) from None
    entries = doc.get("endpoints") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise SettingError(f'{path}: expected {{"endpoints": [...]}}')
    endpoints = [_endpoint(raw, f"{path}: endpoints[{i}]") for i, raw in enumerate(entries)]
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise SettingError(f"{path}: endpoint names must be unique")
    return endpoints


def from_env(environ: Mapping[str, str] = os.environ) -> list[Endpoint]:
    """Endpoints from MAILPOOL_WEBHOOKS_FILE and/or MAILPOOL_WEBHOOK_URL (named ``default``)."""
    endpoints: list[Endpoint] = []
    path = env_opt(environ, "MAILPOOL_WEBHOOKS_FILE")
    if path:
        endpoints.extend(load(pathlib.Path(path)))
    url = env_opt(environ, "MAILPOOL_WEBHOOK_URL")
    if url:
        private = env_bool(environ, "MAILPOOL_WEBHOOK_ALLOW_PRIVATE", False)
        raw = {
            "name": "default",
            "url": url,
            "allow_http": private,
            "internal": private,
            "secret": env_opt(environ, "MAILPOOL_WEBHOOK_SECRET") or "",
        }
        endpoints.append(_endpoint(raw, "MAILPOOL_WEBHOOK_URL"))
    return endpoints
