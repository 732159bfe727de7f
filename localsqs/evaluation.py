"""DynamoDB expressions, evaluated: whether a parsed condition holds for an item, and what
an update makes of one (``localsqs.expressions`` parses them)."""

from decimal import Decimal, InvalidOperation
from typing import Any

from localsqs.expressions import (
    Arith,
    Between,
    Call,
    Compare,
    In,
    Item,
    Literal,
    Logic,
    Path,
    Update,
    Value,
    validation,
)


def _number(value: Value) -> Decimal:
    try:
        return Decimal(value["N"])
    except (InvalidOperation, KeyError, TypeError):
        raise validation("An operand in the update expression has an incorrect data type") from None


def _resolve(operand: Any, item: Item) -> Value | None:
    if isinstance(operand, Literal):
        return operand.value
    if isinstance(operand, Path):
        return item.get(operand.name)
    if isinstance(operand, Call) and operand.fn == "if_not_exists":
        found = _resolve(operand.args[0], item)
        return found if found is not None else _resolve(operand.args[1], item)
    if isinstance(operand, Arith):
        left, right = _resolve(operand.left, item), _resolve(operand.right, item)
        if left is None or right is None:
            raise validation(
                "The provided expression refers to an attribute that does not exist in the item"
            )
        a, b = _number(left), _number(right)
        return {"N": _format(a + b if operand.op == "+" else a - b)}
    raise validation("Invalid operand")


def _format(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _comparable(value: Value) -> tuple[str, Any] | None:
    ((kind, raw),) = value.items()
    if kind == "N":
        return kind, Decimal(raw)
    if kind in ("S", "B"):
        return kind, raw
    return None


def _equal(a: Value | None, b: Value | None) -> bool:
    if a is None or b is None:
        return False
    ca, cb = _comparable(a), _comparable(b)
    if ca is not None and cb is not None:
        return ca == cb
    return a == b


def _order(op: str, a: Value | None, b: Value | None) -> bool:
    if a is None or b is None:
        return False
    ca, cb = _comparable(a), _comparable(b)
    if ca is None or cb is None or ca[0] != cb[0]:
        return False
    x, y = ca[1], cb[1]
    if ca[0] == "S":
        x, y = x.encode(), y.encode()  # DynamoDB orders strings by their UTF-8 bytes
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]  # type: ignore[no-any-return]


def holds(condition: Any, item: Item) -> bool:
    """Whether ``condition`` holds for ``item`` (an empty dict when there is no item)."""
    if isinstance(condition, Logic):
        if condition.op == "AND":
            return all(holds(part, item) for part in condition.parts)
        if condition.op == "OR":
            return any(holds(part, item) for part in condition.parts)
        return not holds(condition.parts[0], item)
    if isinstance(condition, Compare):
        return _compare(condition, item)
    if isinstance(condition, Between):
        value = _resolve(condition.operand, item)
        low, high = _resolve(condition.low, item), _resolve(condition.high, item)
        return _order(">=", value, low) and _order("<=", value, high)
    if isinstance(condition, In):
        value = _resolve(condition.operand, item)
        return any(_equal(value, _resolve(option, item)) for option in condition.options)
    if isinstance(condition, Call):
        return _function(condition, item)
    raise validation("Invalid condition")


def _compare(condition: Compare, item: Item) -> bool:
    a, b = _resolve(condition.left, item), _resolve(condition.right, item)
    if condition.op == "=":
        return _equal(a, b)
    if condition.op == "<>":
        return a is not None and b is not None and not _equal(a, b)
    return _order(condition.op, a, b)


def _function(call: Call, item: Item) -> bool:
    if call.fn == "attribute_exists":
        return call.args[0].name in item
    if call.fn == "attribute_not_exists":
        return call.args[0].name not in item
    subject, part = _resolve(call.args[0], item), _resolve(call.args[1], item)
    if subject is None or part is None:
        return False
    if call.fn == "begins_with":
        return any(
            kind in subject and kind in part and subject[kind].startswith(part[kind])
            for kind in ("S", "B")
        )
    return _contains(subject, part)


def _contains(subject: Value, part: Value) -> bool:
    if "S" in subject and "S" in part:
        return bool(part["S"] in subject["S"])
    for kind in ("SS", "NS", "BS"):
        if kind in subject:
            return any(_equal({kind[0]: m}, part) for m in subject[kind])
    if "L" in subject:
        return any(_equal(element, part) for element in subject["L"])
    return False


def apply(update: Update, item: Item) -> Item:
    """``item`` after ``update`` (a new dict; ``item`` is left as it was)."""
    result = dict(item)
    for name, value in update.set:
        resolved = _resolve(value, item)
        if resolved is None:
            raise validation(
                "The provided expression refers to an attribute that does not exist in the item"
            )
        result[name] = resolved
    for name in update.remove:
        result.pop(name, None)
    for name, literal in update.add:
        result[name] = _add(item.get(name), literal.value)
    return result


def _add(current: Value | None, value: Value) -> Value:
    if "N" in value:
        base = Decimal(0) if current is None else _number(current)
        return {"N": _format(base + _number(value))}
    for kind in ("SS", "NS", "BS"):
        if kind in value:
            if current is not None and kind not in current:
                raise validation("An operand in the update expression has an incorrect data type")
            members = list(current[kind]) if current else []
            members += [m for m in value[kind] if m not in members]
            return {kind: members}
    raise validation(
        "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD"
    )
