"""24-hour idempotency: an Idempotency-Key remembered in the state table.

A claim ``pk = idem#<scope>#<sha256 of the key>`` holds the email id given to the key,
a digest of the request, the owner (the request that made it) and whether SQS has the
email yet (``pending`` → ``accepted``). A conditional write decides between concurrent
requests: one creates the claim and enqueues; the others wait for it to be accepted and
answer its id. A claim left pending past ``takeover_s`` (its owner failed before SQS
answered) is taken over by a conditional write, and the email is enqueued again with
the same id and deduplication ID, so SQS drops the copy if the first attempt did land.
"""

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from pool.errors import Unavailable
from state.table import ConditionFailed, StateTable

PREFIX = "idem#"


def digest(doc: Any) -> str:
    """What makes two requests "the same": their JSON with sorted keys, hashed."""
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Conflict(Exception):
    """The key was used with a different request."""

    def __init__(self, email_id: str) -> None:
        super().__init__("idempotency key reused with a different request")
        self.email_id = email_id


@dataclass(frozen=True, slots=True)
class Decision:
    """What a request with a key does: enqueue ``email_id`` (``owner`` set) or answer it."""

    email_id: str
    owner: str | None

    @property
    def enqueue(self) -> bool:
        return self.owner is not None


class Idempotency:
    """Claims Idempotency-Keys for ``lifetime_s``; ``takeover_s`` after which a pending
    claim's owner is presumed failed."""

    def __init__(self, table: StateTable, lifetime_s: float, takeover_s: float) -> None:
        self._table = table
        self._lifetime_s = lifetime_s
        self._takeover_s = takeover_s

    @staticmethod
    def partition(scope: str, key: str) -> str:
        return f"{PREFIX}{scope}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"

    async def begin(
        self, scope: str, key: str, request: str, new_id: str, deadline_s: float | None = None
    ) -> Decision:
        """Claim ``key`` for a request with digest ``request``: enqueue ``new_id``, answer
        an earlier id, or ``Conflict``; PoolError when the table cannot be reached, or when
        another request holds the key past ``deadline_s`` (a retry after its takeover time
        takes it over, with its whole deadline left to send)."""
        pk = self.partition(scope, key)
        owner = secrets.token_hex(8)
        # Waiting for another request's claim is bounded by this request's own deadline: a
        # retry that waited out a dead owner's takeover time would have nothing left to send
        # with, fail, and leave a fresh pending claim for the next retry to wait out again.
        wait_s = self._takeover_s * 2 if deadline_s is None else deadline_s
        give_up = time.monotonic() + wait_s
        now = time.time()
        claim = {"pk": pk, "sk": "-", "id": new_id, "digest": request, "state": "pending",
                 "owner": owner, "at": now, "expires": int(now + self._lifetime_s)}  # fmt: skip
        found = await self._claim(claim, deadline_s)
        while time.monotonic() < give_up:
            if found is None:
                return Decision(new_id, owner)
            decision = await self._decide(found, claim, request)
            if decision is not None:
                return decision
            await asyncio.sleep(0.05)  # its owner is still sending: wait for its answer
            found = await self._table.get(pk, "-", consistent=True) or await self._claim(claim)
        raise Unavailable("the request holding this key neither finished nor gave it up")

    async def _claim(
        self, claim: dict[str, Any], deadline_s: float | None = None
    ) -> dict[str, Any] | None:
        """None once ``claim`` is written; else the claim already there."""
        try:
            await self._table.claim(claim, deadline_s)  # batched with concurrent claims
        except ConditionFailed as exc:
            return (
                exc.item
                or await self._table.get(claim["pk"], "-", consistent=True)
                or (await self._claim(claim))
            )
        return None

    async def _decide(
        self, found: dict[str, Any], claim: dict[str, Any], request: str
    ) -> Decision | None:
        """What a request does about the claim ``found``; None: wait for its owner."""
        owner = str(claim["owner"])
        if found.get("owner") == owner:  # an attempt whose answer was lost did land
            return Decision(str(found["id"]), owner)
        if float(found["expires"]) < time.time():  # past its lifetime, not yet swept
            fresh = {**claim, "at": time.time()}
            return Decision(str(claim["id"]), owner) if await self._replace(fresh, found) else None
        if found["digest"] != request:
            raise Conflict(str(found["id"]))
        if found["state"] == "accepted":
            return Decision(str(found["id"]), None)
        if time.time() - float(found["at"]) > self._takeover_s:  # its owner gave up
            taken = {**found, "owner": owner, "at": time.time()}
            return Decision(str(found["id"]), owner) if await self._replace(taken, found) else None
        return None

    async def _replace(self, claim: dict[str, Any], found: dict[str, Any]) -> bool:
        try:
            await self._table.replace(claim, {"owner": found["owner"], "state": found["state"]})
        except ConditionFailed:
            return False
        return True

    async def accepted(self, scope: str, key: str, decision: Decision, request: str) -> None:
        """Mark the claim accepted (SQS has the email); PoolError when it cannot."""
        now = time.time()
        await self._table.write(  # batched with other requests' marks
            [
                {
                    "pk": self.partition(scope, key),
                    "sk": "-",
                    "id": decision.email_id,
                    "digest": request,
                    "state": "accepted",
                    "owner": decision.owner,
                    "at": now,
                    "expires": int(now + self._lifetime_s),
                }
            ]
        )
