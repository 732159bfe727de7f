"""The state table through the aiobotocore seam: typed items in, plain dicts out.

Items are flat: string, number and boolean attributes under a string partition key ``pk``
and sort key ``sk``, with ``expires`` (epoch seconds) as the TTL attribute. Concurrent
single reads and writes are coalesced into BatchGetItem (100 keys) and BatchWriteItem (25
items) calls, retried (with what DynamoDB left unprocessed) until their deadline, like the
pool's SQS calls; the flushers run in one task that ``health`` watches.
"""

import asyncio
import contextlib
import time
import types
from collections.abc import Mapping, Sequence
from typing import Any

from aws.client import AwsClient, error_code, error_message
from aws.coalesce import Coalescer, CoalescerLimits
from aws.errors import (
    AwsError,
    Cancelled,
    Misconfigured,
    Rejected,
    Throttled,
    Unavailable,
)
from core.health import Health
from metrics.state import StateMetrics
from state.config import StateConfig

Plain = dict[str, Any]
Key = tuple[str, str]
_THROTTLED = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
#: Few calls in flight at once, so that under load entries gather into full batches (a
#: call costs about a millisecond of CPU on each side, an item a few percent of that).
READ_LIMITS = CoalescerLimits(
    max_entries=100, max_bytes=1 << 30, linger_s=0.002, max_calls=4, deadline_s=5.0
)
#: Conditional puts go in TransactWriteItems calls of up to 100 (all or none: a failed
#: condition cancels the call, and the others go again at once in the next call).
CLAIM_LIMITS = CoalescerLimits(
    max_entries=100, max_bytes=4 << 20, linger_s=0.003, max_calls=2, deadline_s=5.0, backoff_s=0.02
)
WRITE_LIMITS = CoalescerLimits(
    max_entries=25, max_bytes=1 << 30, linger_s=0.02, max_calls=3, deadline_s=10.0
)


class ConditionFailed(Rejected):
    """A conditional write found the item otherwise; ``item`` is what is there (if asked).
    A cancelled transaction carries its ``reasons`` (one per action)."""

    def __init__(
        self, message: str, item: Plain | None, reasons: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, code="ConditionalCheckFailedException")
        self.item = item
        self.reasons = reasons or []


def encode(item: Mapping[str, Any]) -> dict[str, Any]:
    """DynamoDB's typed form of a flat item (str, int, float, bool; None is left out)."""
    typed: dict[str, Any] = {}
    for name, value in item.items():
        if value is None:
            continue
        if isinstance(value, bool):
            typed[name] = {"BOOL": value}
        elif isinstance(value, int | float):
            typed[name] = {"N": repr(value) if isinstance(value, float) else str(value)}
        else:
            typed[name] = {"S": str(value)}
    return typed


def decode(typed: Mapping[str, Any]) -> Plain:
    """The flat item of DynamoDB's typed form."""
    plain: Plain = {}
    for name, value in typed.items():
        ((kind, raw),) = value.items()
        if kind == "N":
            number = float(raw)
            plain[name] = int(number) if number.is_integer() and "." not in raw else number
        elif kind == "BOOL":
            plain[name] = bool(raw)
        else:
            plain[name] = raw
    return plain


def _claimed(reason: Mapping[str, Any], cancelled: bool) -> AwsError | None:
    """What one put of a TransactWriteItems call came to, from its cancellation reason.

    A transaction is all or nothing, but the claims in it are independent: one that failed
    its condition (the key is taken) or met another write to its item (TransactionConflict:
    someone is claiming that key right now) goes back to its caller, who reads what is
    there; the others were cancelled only for its sake and go again at once, holding back
    nobody (a throttle would have delayed every claim of the process).
    """
    code = reason.get("Code", "None")
    if code == "ConditionalCheckFailed":
        there = reason.get("Item")
        return ConditionFailed("claim: taken", decode(there) if there else None)
    if code == "TransactionConflict":
        return ConditionFailed("claim: contended", None)
    if code != "None":  # throttled, …: back off and try again
        return Throttled(f"claim: {code}", code=code)
    if cancelled:
        return Cancelled("claim: cancelled with others", code="Cancelled")
    return None


def key(pk: str, sk: str) -> dict[str, Any]:
    """The typed key of (pk, sk)."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


#: The table's keys and TTL attribute: ``provision`` and the deployment template share them.
KEY_SCHEMA = [
    {"AttributeName": "pk", "KeyType": "HASH"},
    {"AttributeName": "sk", "KeyType": "RANGE"},
]
ATTRIBUTE_DEFINITIONS = [
    {"AttributeName": "pk", "AttributeType": "S"},
    {"AttributeName": "sk", "AttributeType": "S"},
]
TTL_ATTRIBUTE = "expires"


class StateTable(AwsClient):
    """Reads and writes the state table; single calls and coalesced batches."""

    service = "dynamodb"

    def __init__(
        self,
        config: StateConfig,
        health: Health | None = None,
        metrics: StateMetrics | None = None,
    ) -> None:
        super().__init__(
            region=config.region,
            endpoint_url=config.endpoint_url,
            attempts=1,
            connect_timeout_s=2.0,
            read_timeout_s=10.0,
        )
        self.config = config
        self.name = config.table
        self.health = health or Health()
        self._metrics = metrics
        self._reads: Coalescer[Key, Plain | None] = Coalescer(
            self._batch_get, READ_LIMITS, action="BatchGetItem"
        )
        self._writes: Coalescer[Plain, None] = Coalescer(
            self._batch_write, WRITE_LIMITS, action="BatchWriteItem"
        )
        self._claims: Coalescer[Plain, None] = Coalescer(
            self._transact_puts, CLAIM_LIMITS, action="TransactWriteItems"
        )
        self._flushers: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> "StateTable":
        await super().__aenter__()
        self._flushers = asyncio.create_task(self._run_flushers(), name="state-flushers")
        self.health.watch(self._flushers, "state-flushers", may_end=lambda: self._closing)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self._closing = True
        self._reads.close()
        self._writes.close()
        self._claims.close()
        if self._flushers is not None:
            with contextlib.suppress(Exception):
                await asyncio.gather(self._flushers, return_exceptions=True)
        await super().__aexit__(exc_type, exc, tb)

    async def _run_flushers(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._reads.run())
            tasks.create_task(self._writes.run())
            tasks.create_task(self._claims.run())

    @property
    def retrying(self) -> bool:
        """Whether a write that failed is still being retried."""
        return self._writes.retrying

    def failure(self, action: str, exc: Exception) -> AwsError:
        """Map a failed call onto the pool's errors."""
        code, status = error_code(exc)
        if code == "ConditionalCheckFailedException":
            response = getattr(exc, "response", {})
            item = response.get("Item")
            return ConditionFailed(f"{action}: condition failed", decode(item) if item else None)
        if code == "TransactionCanceledException":
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            return ConditionFailed(f"{action}: cancelled", None, list(reasons))
        if code in _THROTTLED:
            return Throttled(f"{action}: {code}", code=code)
        if code == "ResourceNotFoundException":
            return Misconfigured(
                f"{action}: the state table {self.name} does not exist (mailpool queues create)"
            )
        if not code or status >= 500:
            return Unavailable(f"{action}: {code or type(exc).__name__}", code=code or None)
        return Rejected(f"{action}: {code}: {error_message(exc)}", code=code)

    async def _call(self, action: str, **kwargs: Any) -> dict[str, Any]:
        """One call, counted by action and outcome."""
        try:
            answer = await super()._call(action, **kwargs)
        except AwsError:
            self._count(action, kwargs, ok=False)
            raise
        self._count(action, kwargs, ok=True)
        return answer

    def _count(self, action: str, kwargs: dict[str, Any], *, ok: bool) -> None:
        if self._metrics is None:
            return
        name = "".join(part.title() for part in action.split("_"))
        requests = kwargs.get("RequestItems", {}).get(self.name)
        items = len(
            requests.get("Keys", requests) if isinstance(requests, dict) else requests or [1]
        )
        self._metrics.call(name, items, ok)

    # Single calls ----------------------------------------------------------------------------

    async def get(self, pk: str, sk: str, *, consistent: bool = False) -> Plain | None:
        """The item at (pk, sk), if any (one GetItem call)."""
        answer = await self._call(
            "get_item", TableName=self.name, Key=key(pk, sk), ConsistentRead=consistent
        )
        return decode(answer["Item"]) if "Item" in answer else None

    async def put(self, item: Plain, *, only_new: bool = False) -> None:
        """Write ``item`` whole; with ``only_new``, ConditionFailed (carrying what is there)
        when an item with its key exists."""
        kwargs: dict[str, Any] = {}
        if only_new:
            kwargs = {
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        await self._call("put_item", TableName=self.name, Item=encode(item), **kwargs)

    async def replace(self, item: Plain, expected: Mapping[str, Any]) -> None:
        """Write ``item`` whole if the item there has the ``expected`` attribute values."""
        names = {f"#a{i}": name for i, name in enumerate(expected)}
        values = {f":v{i}": encode({"v": v})["v"] for i, v in enumerate(expected.values())}
        condition = " AND ".join(f"#a{i} = :v{i}" for i in range(len(expected)))
        await self._call(
            "put_item",
            TableName=self.name,
            Item=encode(item),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    async def delete(self, pk: str, sk: str) -> bool:
        """Delete the item at (pk, sk); whether there was one."""
        answer = await self._call(
            "delete_item", TableName=self.name, Key=key(pk, sk), ReturnValues="ALL_OLD"
        )
        return "Attributes" in answer

    async def query(
        self, pk: str, *, prefix: str = "", after: str | None = None, limit: int | None = None
    ) -> tuple[list[Plain], str | None]:
        """Items of partition ``pk`` whose sort key starts with ``prefix``, in order, after
        sort key ``after``; (items, the sort key to continue after, if there may be more)."""
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": {"S": pk}, ":s": {"S": prefix}},
            "ConsistentRead": True,
        }
        if not prefix:
            kwargs["KeyConditionExpression"] = "pk = :p"
            del kwargs["ExpressionAttributeValues"][":s"]
        if after is not None:
            kwargs["ExclusiveStartKey"] = key(pk, after)
        items: list[Plain] = []
        while True:
            if limit is not None:
                kwargs["Limit"] = limit - len(items)
            answer = await self._call("query", **kwargs)
            items += [decode(item) for item in answer.get("Items", [])]
            last = answer.get("LastEvaluatedKey")
            if last is None:
                return items, None
            if limit is not None and len(items) >= limit:
                return items, str(last["sk"]["S"])
            kwargs["ExclusiveStartKey"] = last

    # Coalesced batches -------------------------------------------------------------------------

    async def read_many(self, keys: Sequence[Key]) -> dict[Key, Plain]:
        """The items found at ``keys`` (coalesced)."""
        if len(keys) == 1:  # the common case, without gather's task per key
            item = await self._reads.submit(keys[0])
            return {} if item is None else {keys[0]: item}
        unique = list(dict.fromkeys(keys))
        found = await asyncio.gather(*(self._reads.submit(k) for k in unique))
        return {k: item for k, item in zip(unique, found, strict=True) if item is not None}

    async def write(self, items: Sequence[Plain]) -> None:
        """Put ``items`` (unconditionally), in BatchWriteItem calls with concurrent writers;
        returns once every one is stored."""
        if len(items) == 1:  # the common case, without gather's task per item
            await self._writes.submit(items[0])
            return
        await asyncio.gather(*(self._writes.submit(item) for item in items))

    def write_soon(self, item: Plain) -> "asyncio.Future[None]":
        """Put ``item`` in the next BatchWriteItem call; the future says when it is stored
        (or why not). For a writer that does not wait; refusals are raised at once."""
        return self._writes.enqueue(item)

    async def claim(self, item: Plain, deadline_s: float | None = None) -> None:
        """Write ``item`` if no item has its key, in a TransactWriteItems call shared with
        concurrent claims; ConditionFailed (carrying what is there) if one has."""
        await self._claims.submit(item, deadline_s=deadline_s)

    async def _transact_puts(self, items: Sequence[Plain]) -> Sequence[AwsError | None]:
        first: dict[Key, int] = {}
        for index, item in enumerate(items):
            first.setdefault((item["pk"], item["sk"]), index)
        unique = sorted(first.values())  # a transaction takes one action per item
        actions = [
            {
                "Put": {
                    "TableName": self.name,
                    "Item": encode(items[i]),
                    "ConditionExpression": "attribute_not_exists(pk)",
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for i in unique
        ]
        try:
            await self._call("transact_write_items", TransactItems=actions)
            reasons: list[dict[str, Any]] = [{"Code": "None"}] * len(unique)
        except ConditionFailed as exc:
            reasons = exc.reasons
        if len(reasons) != len(unique):  # an answer without its reasons: try again
            reasons = [{"Code": "Unexplained"}] * len(unique)
        cancelled = any(r.get("Code") != "None" for r in reasons)
        outcome = {i: _claimed(r, cancelled) for i, r in zip(unique, reasons, strict=True)}
        results: list[AwsError | None] = []
        for index, item in enumerate(items):
            winner = first[(item["pk"], item["sk"])]
            if winner == index:
                results.append(outcome[index])
            elif outcome[winner] is None:  # the same key earlier in this call took it
                results.append(ConditionFailed("claim: taken", items[winner]))
            else:  # the earlier one did not land: try again in the next call
                results.append(Cancelled("claim: retry", code="Cancelled"))
        return results

    async def _batch_get(self, keys: Sequence[Key]) -> Sequence[Plain | AwsError | None]:
        unique = list(dict.fromkeys(keys))
        request = {self.name: {"Keys": [key(*k) for k in unique], "ConsistentRead": True}}
        answer = await self._call("batch_get_item", RequestItems=request)
        found = {
            (item["pk"]["S"], item["sk"]["S"]): decode(item)
            for item in answer.get("Responses", {}).get(self.name, [])
        }
        unprocessed = {
            (k["pk"]["S"], k["sk"]["S"])
            for k in answer.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
        }
        later = Throttled("BatchGetItem: unprocessed", code="Unprocessed")
        return [later if k in unprocessed else found.get(k) for k in keys]

    async def _batch_write(self, items: Sequence[Plain]) -> Sequence[AwsError | None]:
        latest = {(item["pk"], item["sk"]): item for item in items}  # one write per key
        request = {self.name: [{"PutRequest": {"Item": encode(i)}} for i in latest.values()]}
        answer = await self._call("batch_write_item", RequestItems=request)
        unprocessed = {
            (w["PutRequest"]["Item"]["pk"]["S"], w["PutRequest"]["Item"]["sk"]["S"])
            for w in answer.get("UnprocessedItems", {}).get(self.name, [])
        }
        later = Throttled("BatchWriteItem: unprocessed", code="Unprocessed")
        return [later if (i["pk"], i["sk"]) in unprocessed else None for i in items]

    # Provisioning ------------------------------------------------------------------------------

    async def provision(self) -> str:
        """Create the table if missing (on-demand, encrypted, TTL on ``expires``) and turn
        TTL on where it is off; what was done."""
        done = "exists"
        try:
            await self._call("describe_table", TableName=self.name)
        except Misconfigured:
            await self._call(
                "create_table",
                TableName=self.name,
                KeySchema=KEY_SCHEMA,
                AttributeDefinitions=ATTRIBUTE_DEFINITIONS,
                BillingMode="PAY_PER_REQUEST",
                SSESpecification={"Enabled": True},
            )
            done = "created"
            await self._until_active()
        ttl = await self._call("describe_time_to_live", TableName=self.name)
        ttl_status = ttl.get("TimeToLiveDescription", {}).get("TimeToLiveStatus")
        if ttl_status not in ("ENABLED", "ENABLING"):
            await self._call(
                "update_time_to_live",
                TableName=self.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        return done

    async def check(self) -> None:
        """Misconfigured when the table does not exist (``mailpool queues create`` makes it);
        Unavailable when DynamoDB cannot be reached."""
        await self._call("describe_table", TableName=self.name)

    async def _until_active(self, timeout_s: float = 120.0) -> None:
        until = time.monotonic() + timeout_s
        while time.monotonic() < until:
            described = await self._call("describe_table", TableName=self.name)
            if described["Table"]["TableStatus"] == "ACTIVE":
                return
            await asyncio.sleep(1.0)
        raise Unavailable(f"the state table {self.name} did not become active")

    async def drop(self) -> bool:
        """Delete the table; whether it existed."""
        try:
            await self._call("delete_table", TableName=self.name)
        except Misconfigured:
            return False
        return True
