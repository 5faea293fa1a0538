"""Payload conditions (beyond EP): a small filter language on an event's payload.

An integration may carry `conditions`; an event it observes creates a job for it only when the
conditions hold for the event's payload (no conditions: every observed event matches). The
language is JSON::

    condition := leaf | {"all": [condition, …]} | {"any": [condition, …]} | {"not": condition}
    leaf      := {"field": "<dotted path>", "<operator>": <operand>}

=============================  =================================================================
operator                        operand, and when the leaf holds
=============================  =================================================================
``equals`` / ``not_equals``     a scalar (string, number, boolean or null); the field is present
                                and equal / present and not equal
``in`` / ``not_in``             a non-empty array of scalars; the field is present and equal to
                                one of them / to none of them
``exists``                      ``true`` / ``false``: the field is present / absent
``gt`` ``gte`` ``lt`` ``lte``   a number or a string; the field is a number (or a string) and
                                compares so (strings compare by code point, which orders
                                RFC 3339 timestamps of one offset chronologically)
=============================  =================================================================

A field is a dotted path into the payload, ``data.status`` or ``data.items.0.sku`` (a segment of
digits indexes an array). A field is *present* when every segment resolves; ``null`` is a value,
so a field holding ``null`` is present. Equality is typed: ``true`` never equals ``1`` and ``"1"``
never equals ``1`` (``1`` equals ``1.0``).

Evaluation never raises. A leaf on an absent field does not hold (except ``exists: false``), nor
does a comparison between different types (``gt: 100`` on ``"120"``); wrap a leaf in ``not``
to include absent fields (``{"not": {"field": "data.status", "equals": "test"}}`` holds when the
status is absent).

Limits, checked by `parse` (a 422 at create/update time): nesting depth ≤ `MAX_DEPTH` (a leaf
alone has depth 1), ≤ `MAX_LEAVES` leaves, ≤ `MAX_IN_ITEMS` values per ``in``/``not_in``, a field
of ≤ `MAX_FIELD_LENGTH` characters with ≤ `MAX_SEGMENTS` non-empty segments, string operands of
≤ `MAX_STRING_LENGTH` characters and ≤ `MAX_BYTES` bytes for the whole condition. What is stored
is `to_json(parse(raw))`, the canonical form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

MAX_DEPTH: Final = 5
MAX_LEAVES: Final = 50
MAX_IN_ITEMS: Final = 100
MAX_FIELD_LENGTH: Final = 255
MAX_SEGMENTS: Final = 16
MAX_STRING_LENGTH: Final = 1024
MAX_BYTES: Final = 16 * 1024

EQUALITY: Final = ("equals", "not_equals")
MEMBERSHIP: Final = ("in", "not_in")
ORDERING: Final = ("gt", "gte", "lt", "lte")
OPERATORS: Final = (*EQUALITY, *MEMBERSHIP, "exists", *ORDERING)
COMBINATORS: Final = ("all", "any", "not")

Scalar = str | int | float | bool | None
Operand = Scalar | tuple[Scalar, ...]

_SHAPE = (
    'a condition is {"field": "<path>", "<operator>": <operand>}, {"all": [...]}, '
    '{"any": [...]} or {"not": {...}}'
)


@dataclass(frozen=True, slots=True)
class Leaf:
    """``{"field": field, op: operand}``; `path` is `field` split at the dots."""

    field: str
    path: tuple[str, ...]
    op: str
    operand: Operand


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Leaf | All | AnyOf | Not


class InvalidCondition(ValueError):
    """`problems`: (message, path relative to the condition: ``""``, ``.all[0].gte``, …)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path or '(root)'}: {msg}" for msg, path in problems))
        self.problems = problems


# --- paths ---------------------------------------------------------------------------------------


class InvalidPath(ValueError):
    """Not a dotted path the language accepts; the message says why."""


def parse_path(field: object) -> tuple[str, ...]:
    """`field` split at its dots: a string of at most `MAX_FIELD_LENGTH` characters and
    `MAX_SEGMENTS` non-empty segments (`InvalidPath` otherwise). Conditions' fields and
    integrations' `ordering_key` are such paths."""
    if not isinstance(field, str):
        raise InvalidPath('must be a dotted path string such as "data.status"')
    segments = tuple(field.split("."))
    if not field or len(field) > MAX_FIELD_LENGTH or not all(segments):
        raise InvalidPath(
            f'must be a dotted path of non-empty names such as "data.status", at most '
            f"{MAX_FIELD_LENGTH} characters"
        )
    if len(segments) > MAX_SEGMENTS:
        raise InvalidPath(f"has {len(segments)} segments; at most {MAX_SEGMENTS} are allowed")
    return segments


ABSENT: Final = object()
"""What `resolve` answers for a path that does not resolve."""


def resolve(payload: object, path: tuple[str, ...]) -> object:
    """The value at `path` in `payload`, or `ABSENT`: each segment names a key of an object, or
    (digits only) an index of an array. Never raises."""
    value = payload
    for segment in path:
        if isinstance(value, Mapping):
            if segment not in value:
                return ABSENT
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and segment.isascii():
            index = int(segment)
            if index >= len(value):
                return ABSENT
            value = value[index]
        else:
            return ABSENT
    return value


# --- parsing -------------------------------------------------------------------------------------


def parse(raw: object) -> Condition:
    """Validate `raw` (decoded JSON) and build the condition; `InvalidCondition` lists every
    problem found."""
    parser = _Parser()
    condition = parser.node(raw, "", 1)
    if parser.leaves > MAX_LEAVES:
        parser.problems.append(
            (f"has {parser.leaves} leaves; at most {MAX_LEAVES} are allowed", "")
        )
    if condition is not None and not parser.problems:
        size = len(orjson.dumps(to_json(condition)))
        if size > MAX_BYTES:
            parser.problems.append((f"is {size} bytes; at most {MAX_BYTES} are allowed", ""))
    if parser.problems or condition is None:
        raise InvalidCondition(parser.problems or [(_SHAPE, "")])
    return condition


class _Parser:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.leaves = 0

    def fail(self, message: str, path: str) -> None:
        self.problems.append((message, path))

    def node(self, raw: object, path: str, depth: int) -> Condition | None:
        if not isinstance(raw, dict):
            self.fail(f"must be an object: {_SHAPE}", path)
            return None
        if depth > MAX_DEPTH:
            self.fail(f"is nested too deep: at most {MAX_DEPTH} levels are allowed", path)
            return None
        if "field" in raw:
            return self.leaf(raw, path)
        keys = [key for key in raw if key in COMBINATORS]
        if len(raw) != 1 or len(keys) != 1:
            self.fail(_SHAPE, path)
            return None
        [key] = keys
        value = raw[key]
        if key == "not":
            item = self.node(value, f"{path}.not", depth + 1)
            return None if item is None else Not(item)
        if not isinstance(value, list) or not value:
            self.fail("must be a non-empty array of conditions", f"{path}.{key}")
            return None
        items = [self.node(v, f"{path}.{key}[{i}]", depth + 1) for i, v in enumerate(value)]
        kept = tuple(item for item in items if item is not None)
        if len(kept) != len(items):
            return None
        return All(kept) if key == "all" else AnyOf(kept)

    def leaf(self, raw: dict[str, Any], path: str) -> Leaf | None:
        self.leaves += 1
        field = raw["field"]
        segments = self.field(field, f"{path}.field")
        ops = [key for key in raw if key != "field"]
        unknown = [key for key in ops if key not in OPERATORS]
        for key in unknown:
            self.fail(f"{key!r} is not an operator (one of {', '.join(OPERATORS)})", path)
        if unknown:
            return None
        if len(ops) != 1:
            self.fail(
                f"a leaf has exactly one operator besides field (one of {', '.join(OPERATORS)})",
                path,
            )
            return None
        [op] = ops
        problems_before = len(self.problems)
        operand = self.operand(op, raw[op], f"{path}.{op}")
        if segments is None or len(self.problems) > problems_before:
            return None
        assert isinstance(field, str)
        return Leaf(field, segments, op, operand)

    def field(self, field: object, path: str) -> tuple[str, ...] | None:
        try:
            return parse_path(field)
        except InvalidPath as exc:
            self.fail(str(exc), path)
            return None

    def operand(self, op: str, value: object, path: str) -> Operand | None:
        if op == "exists":
            if not isinstance(value, bool):
                self.fail("must be true or false", path)
                return None
            return value
        if op in MEMBERSHIP:
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_IN_ITEMS:
                self.fail(f"must be an array of 1 to {MAX_IN_ITEMS} values", path)
                return None
            items = [self.scalar(item, f"{path}[{i}]") for i, item in enumerate(value)]
            kept = tuple(item for ok, item in items if ok)
            return kept if len(kept) == len(items) else None
        if op in ORDERING and (isinstance(value, bool) or not isinstance(value, int | float | str)):
            self.fail("must be a number or a string", path)
            return None
        ok, scalar = self.scalar(value, path)
        return scalar if ok else None

    def scalar(self, value: object, path: str) -> tuple[bool, Scalar]:
        """(True, value) for an acceptable scalar operand, else (False, None) and a problem."""
        if isinstance(value, float) and not math.isfinite(value):
            self.fail("must be a finite number", path)
        elif not (value is None or isinstance(value, str | int | float | bool)):
            self.fail("must be a string, number, boolean or null", path)
        elif isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            self.fail(f"is longer than {MAX_STRING_LENGTH} characters", path)
        else:
            return True, value
        return False, None


# --- the canonical form --------------------------------------------------------------------------


def to_json(condition: Condition) -> dict[str, Any]:
    """The canonical JSON of a condition: what is stored and what the API shows."""
    match condition:
        case Leaf(field=field, op=op, operand=operand):
            value = list(operand) if isinstance(operand, tuple) else operand
            return {"field": field, op: value}
        case All(items=items):
            return {"all": [to_json(item) for item in items]}
        case AnyOf(items=items):
            return {"any": [to_json(item) for item in items]}
        case Not(item=item):
            return {"not": to_json(item)}
    raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover


# --- evaluation ----------------------------------------------------------------------------------


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _equal(value: object, operand: object) -> bool:
    return _kind(value) == _kind(operand) != "other" and value == operand


def _ordered(value: object, operand: object, op: str) -> bool:
    kind = _kind(value)
    if kind not in ("number", "string") or kind != _kind(operand):
        return False
    a: Any = value
    b: Any = operand
    if op == "gt":
        return bool(a > b)
    if op == "gte":
        return bool(a >= b)
    if op == "lt":
        return bool(a < b)
    return bool(a <= b)


def _leaf_holds(leaf: Leaf, payload: object) -> bool:
    value = resolve(payload, leaf.path)
    if leaf.op == "exists":
        return (value is not ABSENT) is leaf.operand
    if value is ABSENT:
        return False
    match leaf.op:
        case "equals":
            return _equal(value, leaf.operand)
        case "not_equals":
            return not _equal(value, leaf.operand)
        case "in":
            return isinstance(leaf.operand, tuple) and any(_equal(value, o) for o in leaf.operand)
        case "not_in":
            return isinstance(leaf.operand, tuple) and not any(
                _equal(value, o) for o in leaf.operand
            )
    return _ordered(value, leaf.operand, leaf.op)


def evaluate(condition: Condition, payload: object) -> bool:
    """Whether `condition` holds for `payload`. Never raises (see the module docstring)."""
    try:
        match condition:
            case Leaf():
                return _leaf_holds(condition, payload)
            case All(items=items):
                return all(evaluate(item, payload) for item in items)
            case AnyOf(items=items):
                return any(evaluate(item, payload) for item in items)
            case Not(item=item):
                return not evaluate(item, payload)
    except Exception:  # a comparison Python refuses is a type mismatch: no match
        return False
    return False
