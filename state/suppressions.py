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


def partition(scope: str) -> str:
    """The partition key of a scope's suppression list."""
    return PREFIX + scope


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry of the list."""

    address: str
    reason: str
    created_at: float
    email_id: str | None = None

    def document(self) -> dict[str, Any]:
        """As the API shows it."""
        return {
            "address": self.address,
            "reason": self.reason,
            "created_at": iso_time(self.created_at),
            "email_id": self.email_id,
        }

    def item(self, scope: str) -> dict[str, Any]:
        """As the table stores it (no expiry: a suppression lasts until removed)."""
        return {
            "pk": partition(scope),
            "sk": self.address,
            "reason": self.reason,
            "at": round(self.created_at, 3),
            "email": self.email_id,
        }

    @classmethod
    def of(cls, item: dict[str, Any]) -> "Suppression":
        return cls(str(item["sk"]), str(item["reason"]), float(item["at"]), item.get("email"))


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
    if event.type == ev.COMPLAINED:
        reason = "complaint"
    elif event.type == ev.UNSUBSCRIBED:
        reason = "unsubscribe"
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
        added.append((event.scope, Suppression(address, reason, event.created_at, event.email_id)))
    return added


class Suppressions:
    """Looks addresses up (batched, briefly cached), adds, removes and lists entries."""

    def __init__(self, table: StateTable, cache_s: float) -> None:
        self.table = table
        self._cache_s = cache_s
        self._cache: dict[tuple[str, str], tuple[float, bool]] = {}

    async def suppressed(self, scope: str, addresses: Iterable[str]) -> set[str]:
        """Which of ``addresses`` (as given) are on ``scope``'s list."""
        now = time.monotonic()
        wanted: dict[str, str] = {}
        answer: set[str] = set()
        for address in addresses:
            try:
                normal = normalise(address)
            except AddressError:
                continue
            cached = self._cache.get((scope, normal))
            if cached is not None and cached[0] > now:
                if cached[1]:
                    answer.add(address)
                continue
            wanted[address] = normal
        if wanted:
            keys = [(partition(scope), normal) for normal in set(wanted.values())]
            found = await self.table.read_many(keys)
            on_list = {sk for _, sk in found}
            if len(self._cache) > 100_000:
                self._cache.clear()
            for normal in set(wanted.values()):
                self._cache[(scope, normal)] = (now + self._cache_s, normal in on_list)
            answer |= {address for address, normal in wanted.items() if normal in on_list}
        return answer

    def remember(self, scope: str, address: str) -> None:
        """Trust at once that ``address`` is suppressed (this process just wrote it)."""
        self._cache[(scope, address)] = (time.monotonic() + self._cache_s, True)

    async def add(self, scope: str, entry: Suppression) -> None:
        """Add (or replace) an entry."""
        await self.table.put(entry.item(scope))
        self.remember(scope, entry.address)

    async def get(self, scope: str, address: str) -> Suppression | None:
        """The entry for ``address``, if it is suppressed."""
        item = await self.table.get(partition(scope), normalise(address), consistent=True)
        return None if item is None else Suppression.of(item)

    async def remove(self, scope: str, address: str) -> bool:
        """Take ``address`` off the list; whether it was on it."""
        normal = normalise(address)
        self._cache.pop((scope, normal), None)
        return await self.table.delete(partition(scope), normal)

    async def page(
        self, scope: str, after: str | None, limit: int
    ) -> tuple[Sequence[Suppression], str | None]:
        """Up to ``limit`` entries after address ``after``, in address order; and the
        address to continue after, when there are more."""
        items, last = await self.table.query(partition(scope), after=after, limit=limit)
        return [Suppression.of(item) for item in items], last
