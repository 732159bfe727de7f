"""Delivery claims: one copy of an email is sent, however many copies a queue delivers.

A standard queue delivers at least once: the same message (one SQS message ID) may arrive
twice, at two workers at once. Before sending, a worker claims the email's id with a
conditional write (``pk = send#<email id>``), holding it for ``hold_s``; another copy finds
the claim and is not sent. The claim ends one of three ways:

- **settled** (``done``): the outcome's events are published. It is kept for ``keep_s``, and
  a copy arriving meanwhile is a duplicate: deleted unsent.
- **released** (``release``): a transient failure; the message comes back and claims again.
- **expired**: its holder died mid-send. A copy arriving after ``hold_s`` takes it over.

A copy that finds a live claim of another holder is neither sent nor deleted: it comes back
after its visibility timeout, by when the holder has settled (and the copy is deleted) or
released or died (and the copy is sent). Deleting it at once could lose the email, were the
copy the holder's own message and the holder's attempt to fail.
"""

import enum
import time

from state.table import ConditionFailed, StateTable

PREFIX = "send#"


class Claim(enum.Enum):
    """What a copy may do."""

    SEND = "send"
    #: Another holder's claim is live: leave this copy; it comes back.
    WAIT = "wait"
    #: The email was settled already: this copy is a duplicate.
    DUPLICATE = "duplicate"


class Claims:
    """Claims on the state table."""

    def __init__(self, table: StateTable, hold_s: float, keep_s: float) -> None:
        self._table = table
        self._hold_s = hold_s
        self._keep_s = keep_s

    def _item(self, email_id: str, holder: str, state: str, seconds: float) -> dict[str, object]:
        return {
            "pk": f"{PREFIX}{email_id}",
            "sk": "claim",
            "holder": holder,
            "state": state,
            "until": time.time() + seconds,
            "expires": int(time.time() + max(seconds, self._hold_s)) + 60,
        }

    async def take(self, email_id: str, holder: str) -> Claim:
        """Claim ``email_id`` for ``holder`` (a receipt handle: one per delivered copy)."""
        item = self._item(email_id, holder, "sending", self._hold_s)
        try:
            await self._table.claim(item)
            return Claim.SEND
        except ConditionFailed as exc:
            there = exc.item or {}
        if there.get("state") == "settled":
            return Claim.DUPLICATE
        if float(there.get("until", 0)) > time.time() and there.get("holder") != holder:
            return Claim.WAIT
        try:  # expired (its holder died mid-send), or this holder's own: take it over
            await self._table.replace(item, {"holder": there.get("holder"), "state": "sending"})
        except ConditionFailed:
            return Claim.WAIT
        return Claim.SEND

    async def settle(self, email_id: str, holder: str) -> None:
        """The email's outcome is published: later copies are duplicates for ``keep_s``."""
        await self._table.put(self._item(email_id, holder, "settled", self._keep_s))

    async def release(self, email_id: str) -> None:
        """The attempt failed for now: the message's next delivery claims again."""
        await self._table.delete(f"{PREFIX}{email_id}", "claim")
