"""DynamoDB expressions: condition, key-condition and update expressions on top-level
attributes, parsed into small trees and evaluated against items in DynamoDB's JSON form.

The grammar is DynamoDB's, without document paths (``a.b``, ``a[0]``): comparisons
(``= <> < <= > >=``), ``BETWEEN``, ``IN``, ``AND``/``OR``/``NOT``, parentheses, and the
functions ``attribute_exists``, ``attribute_not_exists``, ``begins_with``, ``contains``;
updates ``SET a = v | a + v | a - v | if_not_exists(a, v)``, ``REMOVE a`` and ``ADD a v``
(numbers and sets). Anything else is a ``ValidationException`` that says so, and so is an
attribute name that is one of DynamoDB's reserved words, as DynamoDB refuses it.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from localsqs.errors import DynamoError
from localsqs.reserved import RESERVED

Value = dict[str, Any]  # one attribute value: {"S": "x"}, {"N": "1"}, ...
Item = dict[str, Value]

_TOKEN = re.compile(
    r"\s*(?:(?P<op><>|<=|>=|[=<>(),+\-.\[\]])|(?P<name>#[A-Za-z0-9_]+)|(?P<value>:[A-Za-z0-9_]+)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>\S))"
)
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}
_FUNCTIONS = {"attribute_exists", "attribute_not_exists", "begins_with", "contains"}
COMPARATORS = ("=", "<>", "<", "<=", ">", ">=")
#: What DynamoDB calls each kind of expression in its error messages.
_KINDS = {
    "condition": "ConditionExpression",
    "key": "KeyConditionExpression",
    "update": "UpdateExpression",
}


def validation(message: str) -> DynamoError:
    """ValidationException."""
    return DynamoError("ValidationException", message)


@dataclass(frozen=True, slots=True)
class Path:
    """A top-level attribute, by its resolved name."""

    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    """An expression attribute value."""

    value: Value


@dataclass(frozen=True, slots=True)
class Call:
    """``fn(args…)``: a condition function, or ``if_not_exists`` in an update."""

    fn: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class Between:
    operand: Any
    low: Any
    high: Any


@dataclass(frozen=True, slots=True)
class In:
    operand: Any
    options: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # AND, OR, NOT
    parts: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # + or -
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class Update:
    """A parsed update expression: SET assignments, REMOVE names, ADD pairs."""

    set: tuple[tuple[str, Any], ...]
    remove: tuple[str, ...]
    add: tuple[tuple[str, Literal], ...]


class _Parser:
    def __init__(
        self,
        text: str,
        names: Mapping[str, str] | None,
        values: Mapping[str, Value] | None,
        expression: str = "ConditionExpression",
    ) -> None:
        self.expression = expression
        self.tokens: list[tuple[str, str]] = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            if kind is None:
                continue
            token = match.group(kind)
            if kind == "bad":
                raise validation(f'Invalid expression: syntax error; token: "{token}"')
            if kind == "word" and token.upper() in _KEYWORDS:
                kind, token = "kw", token.upper()
            self.tokens.append((kind, token))
        self.at = 0
        self.names = dict(names or {})
        self.values = dict(values or {})
        self.used_names: set[str] = set()
        self.used_values: set[str] = set()

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token[0] == "end":
            raise validation("Invalid expression: unexpected end of input")
        self.at += 1
        return token

    def expect(self, token: str) -> None:
        got = self.take()
        if got[1] != token:
            raise validation(f'Invalid expression: syntax error; token: "{got[1]}"')

    def accept(self, token: str) -> bool:
        if self.peek()[1] == token:
            self.at += 1
            return True
        return False

    def done(self) -> None:
        if self.peek()[0] != "end":
            raise validation(f'Invalid expression: syntax error; token: "{self.peek()[1]}"')

    # Operands ------------------------------------------------------------------------------

    def path(self) -> Path:
        kind, token = self.take()
        if kind == "name":
            if token not in self.names:
                raise validation(
                    "Value provided in ExpressionAttributeNames unused in expressions or "
                    f"undefined: {token}"
                )
            self.used_names.add(token)
            path = Path(self.names[token])
        elif kind == "word":
            if token.upper() in RESERVED:
                raise validation(
                    f"Invalid {self.expression}: Attribute name is a reserved keyword; "
                    f"reserved keyword: {token}"
                )
            path = Path(token)
        else:
            raise validation(f'Invalid expression: syntax error; token: "{token}"')
        if self.peek()[1] in (".", "["):
            raise validation("Document paths are not supported by localsqs")
        return path

    def operand(self) -> Any:
        kind, token = self.peek()
        if kind == "value":
            self.take()
            if token not in self.values:
                raise validation(
                    f"An expression attribute value used in expression is not defined: {token}"
                )
            self.used_values.add(token)
            return Literal(self.values[token])
        if kind == "word" and self.tokens[self.at + 1 : self.at + 2] == [("op", "(")]:
            return self.call()
        return self.path()

    def call(self) -> Call:
        _, fn = self.take()
        self.expect("(")
        args = [self.operand()]
        while self.accept(","):
            args.append(self.operand())
        self.expect(")")
        return Call(fn, tuple(args))

    # Conditions ----------------------------------------------------------------------------

    def condition(self) -> Any:
        parts = [self.conjunction()]
        while self.accept("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Logic("OR", tuple(parts))

    def conjunction(self) -> Any:
        parts = [self.negation()]
        while self.accept("AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else Logic("AND", tuple(parts))

    def negation(self) -> Any:
        if self.accept("NOT"):
            return Logic("NOT", (self.negation(),))
        return self.primary()

    def primary(self) -> Any:
        if self.accept("("):
            inner = self.condition()
            self.expect(")")
            return inner
        left = self.operand()
        if isinstance(left, Call):
            if left.fn not in _FUNCTIONS:
                raise validation(f"Invalid function name; function: {left.fn}")
            if left.fn in ("attribute_exists", "attribute_not_exists"):
                _arity(left, 1)
                if not isinstance(left.args[0], Path):
                    raise validation(f"Incorrect operand type for {left.fn}")
            else:
                _arity(left, 2)
            return left
        _, token = self.peek()
        if token in COMPARATORS:
            self.take()
            return Compare(token, left, self.operand())
        if self.accept("BETWEEN"):
            low = self.operand()
            self.expect("AND")
            return Between(left, low, self.operand())
        if self.accept("IN"):
            self.expect("(")
            options = [self.operand()]
            while self.accept(","):
                options.append(self.operand())
            self.expect(")")
            return In(left, tuple(options))
        raise validation(f'Invalid expression: syntax error; token: "{token}"')

    # Updates -------------------------------------------------------------------------------

    def update(self) -> Update:
        clauses: dict[str, list[tuple[str, Any]]] = {}
        while self.peek()[0] != "end":
            _, clause = self.take()
            if clause not in ("SET", "REMOVE", "ADD"):
                raise validation(f'Invalid UpdateExpression: syntax error; token: "{clause}"')
            if clause in clauses:
                raise validation(
                    f'Invalid UpdateExpression: The "{clause}" section can only be used once'
                )
            clauses[clause] = self.actions(clause)
        targets = [name for actions in clauses.values() for name, _ in actions]
        if len(targets) != len(set(targets)):
            raise validation("Invalid UpdateExpression: Two document paths overlap")
        if not targets:
            raise validation("Invalid UpdateExpression: The expression can not be empty;")
        return Update(
            tuple(clauses.get("SET", [])),
            tuple(name for name, _ in clauses.get("REMOVE", [])),
            tuple(clauses.get("ADD", [])),
        )

    def actions(self, clause: str) -> list[tuple[str, Any]]:
        """The comma-separated actions of one SET, REMOVE or ADD clause."""
        actions: list[tuple[str, Any]] = []
        while True:
            name = self.path().name
            if clause == "SET":
                self.expect("=")
                actions.append((name, self.set_value()))
            elif clause == "REMOVE":
                actions.append((name, None))
            else:
                value = self.operand()
                if not isinstance(value, Literal):
                    raise validation("Invalid UpdateExpression: ADD takes a value")
                actions.append((name, value))
            if not self.accept(","):
                return actions

    def set_value(self) -> Any:
        left = self.operand()
        if isinstance(left, Call) and left.fn != "if_not_exists":
            raise validation(f"Invalid function name; function: {left.fn}")
        if isinstance(left, Call):
            _arity(left, 2)
        _, token = self.peek()
        if token in ("+", "-"):
            self.take()
            return Arith(token, left, self.operand())
        return left

    def check_all_used(self) -> None:
        unused_names = set(self.names) - self.used_names
        if unused_names:
            raise validation(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: "
                f"{{{', '.join(sorted(unused_names))}}}"
            )
        unused_values = set(self.values) - self.used_values
        if unused_values:
            raise validation(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: "
                f"{{{', '.join(sorted(unused_values))}}}"
            )


def _arity(call: Call, count: int) -> None:
    if len(call.args) != count:
        raise validation(f"Incorrect number of operands for operator or function; {call.fn}")


@dataclass(frozen=True, slots=True)
class Expressions:
    """The expressions of one request, parsed together (names and values are shared, and
    each must be used by one of them)."""

    condition: Any = None
    key: Any = None
    update: Update | None = None


def parse(
    *,
    condition: str | None = None,
    key: str | None = None,
    update: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Value] | None = None,
) -> Expressions:
    """Parse a request's expressions; ValidationException on anything malformed or unused."""
    parser = _Parser("", names, values)
    parsed: dict[str, Any] = {}
    for field, text in (("condition", condition), ("key", key), ("update", update)):
        if text is None:
            continue
        if not text.strip():
            raise validation(f"Invalid {field} expression: The expression can not be empty;")
        sub = _Parser(text, names, values, _KINDS[field])
        parsed[field] = sub.update() if field == "update" else sub.condition()
        sub.done()
        parser.used_names |= sub.used_names
        parser.used_values |= sub.used_values
    parser.check_all_used()
    return Expressions(**parsed)
