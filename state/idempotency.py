"""24-hour idempotency: an Idempotency-Key remembered in the state table.

A claim ``pk = idem#<scope>#<sha256 of the key>`` holds the email id given to the key,
a digest of the request, the owner (the request that made it) and whether SQS has the
email yet (``pending`` → ``accepted``). A conditional write decides between concurrent
requests: one creates the claim and enqueues; the others wait for it to be accepted and
answer its id. A claim left pending past ``takeover_s`` (its owner failed before SQS
answered) is taken over by a conditional write, and the email is enqueued again with
the same id and deduplication ID, so SQS drops the copy if the first attempt did land.

A retry storm on one key costs the table little: within a process, the first request with
a key leads and later ones with the same request follow it, answered its id the moment SQS
has the email (or going their own way if it fails); only leaders claim, and a leader that
waits for another process's claim polls it with consistent reads batched with every other
poll of the process.
"""

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from aws.errors import Unavailable
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


@dataclass(slots=True, eq=False)
class _Leader:
    """The request of this process that claims a key for the others with its ``request``:
    ``answered`` is the email id once SQS has it, or None when the leader failed."""

    pk: str
    request: str
    answered: "asyncio.Future[str | None]"


@dataclass(frozen=True, slots=True)
class Decision:
    """What a request with a key does: enqueue ``email_id`` (``owner`` set) or answer it."""

    email_id: str
    owner: str | None
    #: Set when this request leads its key in this process: ``settle`` answers the followers.
    leader: _Leader | None = field(default=None, compare=False)

    @property
    def enqueue(self) -> bool:
        return self.owner is not None


#: A claim call that found the key taken but could not say by what (it changed meanwhile).
_UNKNOWN: dict[str, Any] = {}
#: How often a request waiting for another process's claim reads it again.
POLL_S = 0.05


class Idempotency:
    """Claims Idempotency-Keys for ``lifetime_s``; ``takeover_s`` after which a pending
    claim's owner is presumed failed."""

    def __init__(self, table: StateTable, lifetime_s: float, takeover_s: float) -> None:
        self._table = table
        self._lifetime_s = lifetime_s
        self._takeover_s = takeover_s
        self._leaders: dict[str, _Leader] = {}

    @staticmethod
    def partition(scope: str, key: str) -> str:
        return f"{PREFIX}{scope}#{hashlib.sha256(key.encode()).hexdigest()[:40]}"

    async def begin(
        self, scope: str, key: str, request: str, new_id: str, deadline_s: float | None = None
    ) -> Decision:
        """Claim ``key`` for a request with digest ``request``: enqueue ``new_id``, answer
        an earlier id, or ``Conflict``; AwsError when the table cannot be reached, or when
        another request holds the key past ``deadline_s`` (a retry after its takeover time
        takes it over, with its whole deadline left to send). The caller ``settle``s the
        decision it gets once it knows whether SQS has the email."""
        pk = self.partition(scope, key)
        # Waiting for another request's claim is bounded by this request's own deadline: a
        # retry that waited out a dead owner's takeover time would have nothing left to send
        # with, fail, and leave a fresh pending claim for the next retry to wait out again.
        give_up = time.monotonic() + (self._takeover_s * 2 if deadline_s is None else deadline_s)
        leader = self._leaders.get(pk)
        if leader is None:
            future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            leader = self._leaders[pk] = _Leader(pk, request, future)
            try:
                decision = await self._begin(pk, request, new_id, give_up)
            except BaseException:
                self.settle(Decision(new_id, None, leader), None)
                raise
            return Decision(decision.email_id, decision.owner, leader)
        if leader.request == request:
            answered = await self._follow(leader, give_up)
            if answered is not None:
                return Decision(answered, None)
        # Another request for this key (a conflict, most likely), or its leader failed:
        # this one finds out on its own.
        return await self._begin(pk, request, new_id, give_up)

    def settle(self, decision: Decision, email_id: str | None) -> None:
        """The request that got ``decision`` is done: SQS has ``email_id``, or (None) the
        email was not taken. Its followers in this process get that answer."""
        leader = decision.leader
        if leader is None:
            return
        if not leader.answered.done():
            leader.answered.set_result(email_id)
        if self._leaders.get(leader.pk) is leader:
            del self._leaders[leader.pk]

    @staticmethod
    async def _follow(leader: _Leader, give_up: float) -> str | None:
        """The leader's answer; Unavailable if none comes before ``give_up``."""
        done, _ = await asyncio.wait({leader.answered}, timeout=give_up - time.monotonic())
        if not done:
            raise Unavailable("the request holding this key neither finished nor gave it up")
        return leader.answered.result()

    async def _begin(self, pk: str, request: str, new_id: str, give_up: float) -> Decision:
        owner = secrets.token_hex(8)
        now = time.time()
        claim = {
            "pk": pk,
            "sk": "-",
            "id": new_id,
            "digest": request,
            "state": "pending",
            "owner": owner,
            "at": now,
            "expires": int(now + self._lifetime_s),
        }
        found = await self._claim(claim, give_up)
        while True:
            if found is None:
                return Decision(new_id, owner)
            if found is not _UNKNOWN:
                decision = await self._decide(found, claim, request)
                if decision is not None:
                    return decision
            if time.monotonic() + POLL_S >= give_up:
                raise Unavailable("the request holding this key neither finished nor gave it up")
            await asyncio.sleep(POLL_S)  # its owner is still sending: wait for its answer
            found = (await self._table.read_many([(pk, "-")])).get((pk, "-"))
            if found is None:  # gone (expired and swept, or given up): claim it again
                found = await self._claim(claim, give_up)

    async def _claim(self, claim: dict[str, Any], give_up: float) -> dict[str, Any] | None:
        """None once ``claim`` is written; else the claim already there (``_UNKNOWN`` if it
        changed before it could be read)."""
        try:
            await self._table.claim(claim, give_up - time.monotonic())  # batched with others
        except ConditionFailed as exc:
            if exc.item is not None:
                return exc.item
            pk: str = claim["pk"]
            there = (await self._table.read_many([(pk, "-")])).get((pk, "-"))
            return _UNKNOWN if there is None else there
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

    def accepted(
        self, scope: str, key: str, decision: Decision, request: str
    ) -> "asyncio.Future[None]":
        """Mark the claim accepted (SQS has the email), batched with other requests' marks:
        the future of the write; AwsError, at once or from it, when it cannot be made."""
        now = time.time()
        return self._table.write_soon(
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
        )
