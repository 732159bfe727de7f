"""The DynamoDB JSON protocol: ``X-Amz-Target: DynamoDB_20120810.<Operation>``.

The operations mailpool uses: CreateTable, DescribeTable, DeleteTable, ListTables,
UpdateTimeToLive, DescribeTimeToLive, GetItem, PutItem, UpdateItem, DeleteItem,
BatchGetItem, BatchWriteItem, TransactWriteItems (Put actions) and Query (see
``localsqs/tables.py`` for what each keeps of DynamoDB's semantics). Anything else is an
UnknownOperationException.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from localsqs import expressions as ex
from localsqs.errors import DynamoError
from localsqs.expressions import validation
from localsqs.tables import MAX_BATCH_WRITE, Tables

Params = dict[str, Any]
Operation = Callable[[Tables, Params], Awaitable[dict[str, Any]]]
TARGET_PREFIX = "DynamoDB_20120810"


def _name(params: Params) -> str:
    name = params.get("TableName")
    if not isinstance(name, str) or not 3 <= len(name) <= 255:
        raise validation(
            "1 validation error detected: Value at 'tableName' failed to satisfy "
            "constraint: Member must have length between 3 and 255"
        )
    return name


def _expressions(params: Params, **fields: str) -> ex.Expressions:
    """Parse the request's expressions named by ``fields`` (kind -> parameter)."""
    texts = {kind: params.get(param) for kind, param in fields.items()}
    for kind, text in texts.items():
        if text is not None and not isinstance(text, str):
            raise validation(f"Invalid {kind} expression")
    names, values = params.get("ExpressionAttributeNames"), params.get("ExpressionAttributeValues")
    given = {kind: text for kind, text in texts.items() if text is not None}
    if not names and not values:  # nothing request-specific: parsed once (claims' condition)
        return _parsed(tuple(sorted(given.items())))
    return ex.parse(names=names, values=values, **given)


@functools.lru_cache(maxsize=256)
def _parsed(texts: tuple[tuple[str, str], ...]) -> ex.Expressions:
    """Expressions without names or values; their trees are frozen, so shared."""
    given = dict(texts)
    return ex.parse(
        condition=given.get("condition"), key=given.get("key"), update=given.get("update")
    )


def _old_on_failure(params: Params) -> bool:
    return params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"


async def create_table(tables: Tables, params: Params) -> dict[str, Any]:
    name = _name(params)
    hash_key = range_key = None
    for element in params.get("KeySchema") or []:
        if element.get("KeyType") == "HASH":
            hash_key = element["AttributeName"]
        elif element.get("KeyType") == "RANGE":
            range_key = element["AttributeName"]
    if hash_key is None:
        raise validation("Invalid KeySchema: Some index key attribute have no definition")
    types = {d["AttributeName"]: d["AttributeType"] for d in params.get("AttributeDefinitions", [])}
    for key in (hash_key, range_key):
        if key is not None and types.get(key) != "S":
            raise validation(f"localsqs supports only string (S) keys; {key} is not one")
    sse = bool((params.get("SSESpecification") or {}).get("Enabled"))
    table = await tables.create(
        name, hash_key, range_key, billing=params.get("BillingMode", "PROVISIONED"), sse=sse
    )
    described = table.description()
    described["TableStatus"] = "ACTIVE"
    return {"TableDescription": described}


async def describe_table(tables: Tables, params: Params) -> dict[str, Any]:
    table = tables.table(_name(params))
    count, size = await tables.counts(table.name)
    return {"Table": table.description(count, size)}


async def delete_table(tables: Tables, params: Params) -> dict[str, Any]:
    table = await tables.delete(_name(params))
    described = table.description()
    described["TableStatus"] = "DELETING"
    return {"TableDescription": described}


async def list_tables(tables: Tables, params: Params) -> dict[str, Any]:
    names = tables.names()
    start = params.get("ExclusiveStartTableName")
    if start:
        names = [n for n in names if n > start]
    limit = int(params.get("Limit") or 100)
    page: dict[str, Any] = {"TableNames": names[:limit]}
    if len(names) > limit:
        page["LastEvaluatedTableName"] = names[limit - 1]
    return page


async def update_time_to_live(tables: Tables, params: Params) -> dict[str, Any]:
    spec = params.get("TimeToLiveSpecification") or {}
    attribute, enabled = spec.get("AttributeName"), spec.get("Enabled")
    if not isinstance(attribute, str) or not isinstance(enabled, bool):
        raise validation("TimeToLiveSpecification needs AttributeName and Enabled")
    await tables.set_ttl(_name(params), attribute, enabled)
    return {"TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": attribute}}


async def describe_time_to_live(tables: Tables, params: Params) -> dict[str, Any]:
    table = tables.table(_name(params))
    if table.ttl_attribute is None:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}
    return {
        "TimeToLiveDescription": {
            "TimeToLiveStatus": "ENABLED",
            "AttributeName": table.ttl_attribute,
        }
    }


async def get_item(tables: Tables, params: Params) -> dict[str, Any]:
    if params.get("ProjectionExpression") or params.get("AttributesToGet"):
        raise validation("localsqs does not support projections")
    _expressions(params)
    item = await tables.get(_name(params), params.get("Key") or {})
    return {} if item is None else {"Item": item}


def _returned(params: Params, allowed: tuple[str, ...]) -> str:
    returned = params.get("ReturnValues") or "NONE"
    if returned not in allowed:
        raise validation(f"Return values set to invalid value: {returned}")
    return str(returned)


async def put_item(tables: Tables, params: Params) -> dict[str, Any]:
    returned = _returned(params, ("NONE", "ALL_OLD"))
    parsed = _expressions(params, condition="ConditionExpression")
    old = await tables.put(
        _name(params),
        params.get("Item") or {},
        parsed.condition,
        return_old=returned == "ALL_OLD",
        old_on_failure=_old_on_failure(params),
    )
    return {"Attributes": old} if old else {}


async def update_item(tables: Tables, params: Params) -> dict[str, Any]:
    returned = _returned(params, ("NONE", "ALL_OLD", "ALL_NEW", "UPDATED_OLD", "UPDATED_NEW"))
    parsed = _expressions(params, condition="ConditionExpression", update="UpdateExpression")
    if parsed.update is None:
        raise validation("localsqs needs an UpdateExpression (AttributeUpdates is legacy)")
    old, new = await tables.update(
        _name(params),
        params.get("Key") or {},
        parsed.update,
        parsed.condition,
        old_on_failure=_old_on_failure(params),
    )
    if returned == "ALL_NEW":
        return {"Attributes": new}
    if returned == "ALL_OLD":
        return {"Attributes": old} if old else {}
    if returned in ("UPDATED_OLD", "UPDATED_NEW"):
        source = (old or {}) if returned == "UPDATED_OLD" else new
        names = [n for n, _ in parsed.update.set] + [n for n, _ in parsed.update.add]
        if returned == "UPDATED_OLD":
            names += list(parsed.update.remove)
        changed = {n: source[n] for n in names if n in source}
        return {"Attributes": changed} if changed else {}
    return {}


async def delete_item(tables: Tables, params: Params) -> dict[str, Any]:
    returned = _returned(params, ("NONE", "ALL_OLD"))
    parsed = _expressions(params, condition="ConditionExpression")
    old = await tables.remove(
        _name(params),
        params.get("Key") or {},
        parsed.condition,
        old_on_failure=_old_on_failure(params),
    )
    return {"Attributes": old} if returned == "ALL_OLD" and old else {}


async def batch_get_item(tables: Tables, params: Params) -> dict[str, Any]:
    requests = params.get("RequestItems") or {}
    if not requests:
        raise validation("The requestItems parameter is required for BatchGetItem")
    keys: dict[str, list[Any]] = {}
    for name, request in requests.items():
        if request.get("ProjectionExpression") or request.get("AttributesToGet"):
            raise validation("localsqs does not support projections")
        keys[name] = list(request.get("Keys") or [])
    found = await tables.batch_get(keys)
    return {"Responses": found, "UnprocessedKeys": {}}


async def batch_write_item(tables: Tables, params: Params) -> dict[str, Any]:
    requests = params.get("RequestItems") or {}
    if not requests or sum(len(v) for v in requests.values()) > MAX_BATCH_WRITE:
        raise validation(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: "
            "Member must have length less than or equal to 25"
        )
    await tables.batch_write(requests)
    return {"UnprocessedItems": {}}


async def transact_write_items(tables: Tables, params: Params) -> dict[str, Any]:
    actions = params.get("TransactItems") or []
    if not 1 <= len(actions) <= 100:
        raise validation(
            "1 validation error detected: Value at 'transactItems' failed to "
            "satisfy constraint: Member must have length less than or equal to "
            "100, Member must have length greater than or equal to 1"
        )
    puts = []
    for action in actions:
        if set(action) != {"Put"}:
            raise validation("localsqs supports only Put actions in TransactWriteItems")
        put = action["Put"]
        parsed = _expressions(put, condition="ConditionExpression")
        old = put.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
        puts.append((_name(put), put.get("Item") or {}, parsed.condition, old))
    await tables.transact_puts(puts)
    return {}


async def query(tables: Tables, params: Params) -> dict[str, Any]:
    for unsupported in ("FilterExpression", "ProjectionExpression", "IndexName", "KeyConditions"):
        if params.get(unsupported):
            raise validation(f"localsqs does not support {unsupported} in Query")
    parsed = _expressions(params, key="KeyConditionExpression")
    if parsed.key is None:
        raise validation(
            "Either the KeyConditions or KeyConditionExpression parameter must "
            "be specified in the request."
        )
    limit = params.get("Limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise validation("Limit must be at least 1")
    page = await tables.query(
        _name(params),
        parsed.key,
        limit=limit,
        forward=params.get("ScanIndexForward", True) is not False,
        start=params.get("ExclusiveStartKey"),
    )
    answer: dict[str, Any] = {
        "Items": page.items,
        "Count": len(page.items),
        "ScannedCount": len(page.items),
    }
    if page.last_key is not None:
        answer["LastEvaluatedKey"] = page.last_key
    return answer


OPERATIONS: dict[str, Operation] = {
    "CreateTable": create_table,
    "DescribeTable": describe_table,
    "DeleteTable": delete_table,
    "ListTables": list_tables,
    "UpdateTimeToLive": update_time_to_live,
    "DescribeTimeToLive": describe_time_to_live,
    "GetItem": get_item,
    "PutItem": put_item,
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "BatchGetItem": batch_get_item,
    "BatchWriteItem": batch_write_item,
    "TransactWriteItems": transact_write_items,
    "Query": query,
}


async def call(tables: Tables, operation: str, params: Params) -> dict[str, Any]:
    """Run one DynamoDB operation; DynamoError for every refusal."""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise DynamoError(
            "UnknownOperationException",
            f"localsqs does not serve the DynamoDB operation {operation or '(none)'}",
        )
    try:
        return await handler(tables, params)
    except (KeyError, TypeError, AttributeError) as exc:  # a malformed request shape
        raise validation(f"Malformed request ({type(exc).__name__})") from None
