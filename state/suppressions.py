"""The suppression list: per API-key scope, addresses never to mail again.

``pk = sup#<scope>``, ``sk = <address>`` with the domain in lower-case ASCII (IDNA), so
one address is one entry; each entry says why (``hard_bounce``, ``complaint``,
``unsubscribe``, ``manual``) and when, and the email that caused it. Senders look
addresses up in BatchGetItem calls shared between concurrent deliveries and trust an
answer for ``suppression_cache_s`` seconds (a suppression added elsewhere takes effect
within that time; one added by this process, at once).
"""

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core import events as ev
from core.addresses import AddressError, parse_addr
from core.events import Event, iso_time
from state.table import StateTable

PREFIX = "sup#"
REASONS = ("hard_bounce", "complaint", "unsubscribe", "manual")


def normalise(address: str) -> str:
    """One spelling per address: the domain in lower-case ASCII; AddressError if invalid."""
    return parse_addr(address.strip())


def folded(normal: str) -> str:
    """The key an address is matched by: a normalised address with its local part
    case-folded too. RFC 5321 lets a server tell ``Jane.Doe`` from ``jane.doe``; none that
    mail reaches does, and a suppression that misses is worse than one that is too wide."""
    local, at, domain = normal.rpartition("@")
    return f"{local.casefold()}{at}{domain}"


def partition(scope: str, list_name: str | None = None) -> str:
    """The partition key of a scope's suppression list, or of one of its mailing lists
    (where one-click unsubscribes go: they remove a recipient from that list alone)."""
    return PREFIX + scope if list_name is None else f"{PREFIX}{scope}#list#{list_name}"


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry of the list (of the key's whole list, or of one mailing list)."""

    address: str
    reason: str
    created_at: float
    email_id: str | None = None
    #: The mailing list it holds for; None: every email of the key.
    list: str | None = None

    def document(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "address": self.address,
            "reason": self.reason,
            "created_at": iso_time(self.created_at),
            "email_id": self.email_id,
            "list": self.list,
        }

    def item(self, scope: str) -> dict[str, Any]:
        """As the table stores it (no expiry: a suppression lasts until removed): keyed by
        the case-folded address, with the spelling it was given for display."""
        item = {
            "pk": partition(scope, self.list),
            "sk": folded(self.address),
            "reason": self.reason,
            "at": round(self.created_at, 3),
            "email": self.email_id,
        }
        if self.address != item["sk"]:
            item["addr"] = self.address
        return item

    @classmethod
    def of(cls, item: dict[str, Any], list_name: str | None = None) -> "Suppression":
        address = str(item.get("addr") or item["sk"])
        return cls(address, str(item["reason"]), float(item["at"]), item.get("email"), list_name)


def hard_bounce(event: Event, code: int | None, enhanced: str | None) -> bool:
    """Whether a bounce tells that the address does not exist (never mail it again)."""
    if event.type != ev.BOUNCED:
        return False
    if event.reason and event.reason.startswith("Permanent/"):  # SES feedback
        return True
    return code is not None and 500 <= code < 600 and (enhanced or "").startswith("5.1.")


def caused_by(event: Event) -> list[tuple[str, Suppression]]:
    """The (scope, suppression) entries an event adds: hard bounces, complaints and
    unsubscribes, for the scope that sent the email."""
    if event.scope is None:
        return []
    list_name = None
    if event.type == ev.COMPLAINED:
        reason = "complaint"
    elif event.type == ev.UNSUBSCRIBED:  # RFC 8058: off the list the link names, only
        reason, list_name = "unsubscribe", event.origin or "default"
    elif event.type == ev.BOUNCED:
        reason = "hard_bounce"
    else:
        return []
    added = []
    for recipient in event.recipients:
        if reason == "hard_bounce" and not hard_bounce(event, recipient.code, recipient.enhanced):
            continue
        try:
            address = normalise(recipient.address)
        except AddressError:
            continue
        entry = Suppression(address, reason, event.created_at, event.email_id, list_name)
        added.append((event.scope, entry))
    return added


class Suppressions:
    """Looks addresses up (batched, briefly cached), adds, removes and lists entries."""

    def __init__(self, table: StateTable, cache_s: float) -> None:
        self.table = table
        self._cache_s = cache_s
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def suppressed(
        self, scope: str, addresses: Iterable[str], list_name: str | None = None
    ) -> set[str]:
        """Which of ``addresses`` (as given) are on ``scope``'s list, or on its mailing
        list ``list_name`` (the list an email's unsubscribe link names)."""
        partitions = [partition(scope)] + (
            [] if list_name is None else [partition(scope, list_name)]
        )
        now = time.monotonic()
        wanted: dict[str, list[tuple[str, str]]] = {}
        answer: set[str] = set()
        for address in addresses:
            try:
                normal = normalise(address)
            except AddressError:
                continue
            # Entries written before matching was case-folded are keyed by their spelling.
            spellings = dict.fromkeys((folded(normal), normal))
            keys = [(pk, sk) for pk in partitions for sk in spellings]
            hits = [self._cache.get(key) for key in keys]
            if all(hit is not None and hit[0] > now for hit in hits):
                if any(hit is not None and hit[1] for hit in hits):
                    answer.add(address)
                continue
            wanted[address] = keys
        if wanted:
            asked = list(dict.fromkeys(key for keys in wanted.values() for key in keys))
            found = set(await self.table.read_many(asked))
            if len(self._cache) > 100_000:
                self._cache.clear()
            for key in asked:
                self._cache[key] = (now + self._cache_s, key in found)
            answer |= {a for a, keys in wanted.items() if any(k in found for k in keys)}
        return answer

    def remember(self, scope: str, entry: "Suppression") -> None:
        """Trust at once that ``entry``'s address is suppressed (this process just wrote it)."""
        key = (partition(scope, entry.list), folded(entry.address))
        self._cache[key] = (time.monotonic() + self._cache_s, True)

    async def add(self, scope: str, entry: Suppression) -> None:
        """Add (or replace) an entry."""
        await self.table.put(entry.item(scope))
        self.remember(scope, entry)

    async def get(
        self, scope: str, address: str, list_name: str | None = None
    ) -> Suppression | None:
        """The entry for ``address``, if it is suppressed (on ``list_name``, if given)."""
        normal = normalise(address)
        for sk in dict.fromkeys((folded(normal), normal)):
            item = await self.table.get(partition(scope, list_name), sk, consistent=True)
            if item is not None:
                return Suppression.of(item, list_name)
        return None

    async def remove(self, scope: str, address: str, list_name: str | None = None) -> bool:
        """Take ``address`` off the list (or off ``list_name``); whether it was on it."""
        normal = normalise(address)
        removed = False
        for sk in dict.fromkeys((folded(normal), normal)):
            self._cache.pop((partition(scope, list_name), sk), None)
            removed = await self.table.delete(partition(scope, list_name), sk) or removed
        return removed

    async def page(
        self, scope: str, after: str | None, limit: int, list_name: str | None = None
    ) -> tuple[Sequence[Suppression], str | None]:
        """Up to ``limit`` entries after key ``after``, in key (case-folded address)
        order; and the key to continue after, when there are more."""
        pk = partition(scope, list_name)
        items, last = await self.table.query(pk, after=after, limit=limit)
        return [Suppression.of(item, list_name) for item in items], last
