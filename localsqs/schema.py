"""A DynamoDB table's definition in the engine, and what its items and key conditions must
be: the checks every operation of ``localsqs.tables`` makes before it touches the store."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from localsqs import expressions as ex
from localsqs.expressions import Item, Value, validation

MAX_ITEM_BYTES = 400 * 1024


@dataclass(slots=True)
class Table:
    """One table's definition, as DescribeTable tells it."""

    name: str
    hash_key: str
    range_key: str | None
    created: float
    arn: str
    ttl_attribute: str | None = None
    billing: str = "PAY_PER_REQUEST"
    sse: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def key_of(self, item: Item, what: str = "key") -> tuple[str, str]:
        """(partition, sort) of ``item``; ValidationException when a key is missing or not S."""
        names = [self.hash_key] + ([self.range_key] if self.range_key else [])
        values = []
        for name in names:
            value = item.get(name)
            if value is None:
                raise validation(
                    "One of the required keys was not given a value"
                    if what == "key"
                    else f"One or more parameter values were invalid: Missing the key {name} "
                    "in the item"
                )
            if set(value) != {"S"} or not value["S"]:
                raise validation(
                    "One or more parameter values were invalid: Type mismatch for key "
                    f"{name} expected: S actual: {next(iter(value))}"
                    if set(value) != {"S"}
                    else "One or more parameter values are not valid. The AttributeValue for a "
                    f"key attribute cannot contain an empty string value. Key: {name}"
                )
            values.append(value["S"])
        return values[0], values[1] if len(values) > 1 else ""

    def check_key(self, key: Item) -> tuple[str, str]:
        """Like ``key_of``, and the key names nothing but key attributes."""
        allowed = {self.hash_key, self.range_key}
        if any(name not in allowed for name in key) or len(key) != (2 if self.range_key else 1):
            raise validation("The provided key element does not match the schema")
        return self.key_of(key)

    def expires(self, item: Item) -> int | None:
        """When the sweep may delete ``item`` (its TTL attribute), if TTL is on."""
        if self.ttl_attribute is None:
            return None
        value = item.get(self.ttl_attribute)
        if value is None or "N" not in value:
            return None
        try:
            return int(float(value["N"]))
        except ValueError:
            return None

    def description(self, count: int = 0, size: int = 0) -> dict[str, Any]:
        """TableDescription."""
        schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        definitions = [{"AttributeName": self.hash_key, "AttributeType": "S"}]
        if self.range_key:
            schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
            definitions.append({"AttributeName": self.range_key, "AttributeType": "S"})
        described: dict[str, Any] = {
            "TableName": self.name,
            "TableStatus": "ACTIVE",
            "KeySchema": schema,
            "AttributeDefinitions": definitions,
            "CreationDateTime": self.created,
            "TableArn": self.arn,
            "TableId": self.arn.rsplit("/", 1)[-1],
            "ItemCount": count,
            "TableSizeBytes": size,
            "BillingModeSummary": {"BillingMode": self.billing},
            "ProvisionedThroughput": {
                "NumberOfDecreasesToday": 0,
                "ReadCapacityUnits": 0,
                "WriteCapacityUnits": 0,
            },
        }
        if self.sse:
            described["SSEDescription"] = {"Status": "ENABLED", "SSEType": "KMS"}
        return described

    def encode(self) -> str:
        return orjson.dumps(
            {
                "hash": self.hash_key,
                "range": self.range_key,
                "created": self.created,
                "arn": self.arn,
                "ttl": self.ttl_attribute,
                "billing": self.billing,
                "sse": self.sse,
            }
        ).decode()

    @classmethod
    def decode(cls, name: str, raw: str) -> "Table":
        doc = orjson.loads(raw)
        return cls(
            name,
            doc["hash"],
            doc["range"],
            doc["created"],
            doc["arn"],
            doc["ttl"],
            doc["billing"],
            doc["sse"],
        )


def item_size(item: Item) -> int:
    """An item's size, near enough to DynamoDB's accounting (names plus values)."""
    return len(orjson.dumps(item))


def check_item(item: Item) -> None:
    if item_size(item) > MAX_ITEM_BYTES:
        raise validation("Item size has exceeded the maximum allowed size")
    for name, value in item.items():
        if not isinstance(value, dict) or len(value) != 1:
            raise validation(
                f"Supplied AttributeValue has more than one datatypes set, or is empty: {name}"
            )


def split_key_condition(table: Table, condition: Any) -> tuple[str, tuple[str, list[str]] | None]:
    """(partition value, optional (operator, sort values)) of a key condition."""
    parts: Sequence[Any] = (
        condition.parts
        if isinstance(condition, ex.Logic) and condition.op == "AND"
        else (condition,)
    )
    partition: str | None = None
    sort: tuple[str, list[str]] | None = None
    for part in parts:
        if (
            isinstance(part, ex.Compare)
            and isinstance(part.left, ex.Path)
            and isinstance(part.right, ex.Literal)
        ):
            name, values, op = part.left.name, [part.right.value], part.op
        elif isinstance(part, ex.Between) and isinstance(part.operand, ex.Path):
            name, values, op = part.operand.name, [part.low.value, part.high.value], "BETWEEN"
        elif isinstance(part, ex.Call) and part.fn == "begins_with":
            name, values, op = part.args[0].name, [part.args[1].value], "begins_with"
        else:
            raise validation("Query key condition not supported")
        strings = [string_of(v) for v in values]
        if name == table.hash_key and op == "=" and partition is None:
            partition = strings[0]
        elif name == table.range_key and sort is None and op != "<>":
            sort = (op, strings)
        else:
            raise validation("Query key condition not supported")
    if partition is None:
        raise validation("Query condition missed key schema element: " + table.hash_key)
    return partition, sort


def string_of(value: Value) -> str:
    if set(value) != {"S"}:
        raise validation(
            "One or more parameter values were invalid: Condition parameter type "
            "does not match schema type"
        )
    return str(value["S"])
