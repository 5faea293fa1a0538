"""The payload condition language (hub/conditions.py): a table of payloads by conditions, the
validation of every shape and limit, and the canonical form."""

from __future__ import annotations

from typing import Any

import pytest

from hub.conditions import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_IN_ITEMS,
    MAX_LEAVES,
    InvalidCondition,
    evaluate,
    parse,
    to_json,
)

PAID = {
    "data": {
        "type": "order",
        "id": "o-1",
        "status": "paid",
        "total": 120,
        "price": 99.5,
        "vip": True,
        "coupon": None,
        "placed_at": "2026-11-22T10:00:00.000Z",
        "tags": ["gift", "express"],
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "customer": {"id": "c-7", "address": {"country": "FR"}},
    },
    "included": {},
}
EMPTY: dict[str, Any] = {"data": {}}


def leaf(field: str, op: str, operand: Any) -> dict[str, Any]:
    return {"field": field, op: operand}


# (condition, holds for PAID, holds for EMPTY)
TABLE: list[tuple[str, dict[str, Any], bool, bool]] = [
    ("equals a string", leaf("data.status", "equals", "paid"), True, False),
    ("equals another string", leaf("data.status", "equals", "unpaid"), False, False),
    ("equals an int", leaf("data.total", "equals", 120), True, False),
    ("an int equals the same float", leaf("data.total", "equals", 120.0), True, False),
    ("a string never equals a number", leaf("data.total", "equals", "120"), False, False),
    ("true never equals 1", leaf("data.vip", "equals", 1), False, False),
    ("equals true", leaf("data.vip", "equals", True), True, False),
    ("equals null on a null field", leaf("data.coupon", "equals", None), True, False),
    ("equals null on an absent field", leaf("data.nothing", "equals", None), False, False),
    ("an array never equals a scalar", leaf("data.tags", "equals", "gift"), False, False),
    ("not_equals another value", leaf("data.status", "not_equals", "unpaid"), True, False),
    ("not_equals the same value", leaf("data.status", "not_equals", "paid"), False, False),
    ("not_equals another type", leaf("data.total", "not_equals", "120"), True, False),
    ("in a list holding it", leaf("data.status", "in", ["paid", "refunded"]), True, False),
    ("in a list without it", leaf("data.status", "in", ["open", "refunded"]), False, False),
    ("in with mixed types", leaf("data.total", "in", ["120", 120]), True, False),
    ("not_in a list without it", leaf("data.status", "not_in", ["open"]), True, False),
    ("not_in a list holding it", leaf("data.status", "not_in", ["paid"]), False, False),
    ("exists on a present field", leaf("data.tags", "exists", True), True, False),
    ("exists on a null field", leaf("data.coupon", "exists", True), True, False),
    ("exists false on an absent field", leaf("data.nothing", "exists", False), True, True),
    ("exists false on a present field", leaf("data.status", "exists", False), False, True),
    ("gt below", leaf("data.total", "gt", 100), True, False),
    ("gt equal", leaf("data.total", "gt", 120), False, False),
    ("gte equal", leaf("data.total", "gte", 120), True, False),
    ("lt a float", leaf("data.price", "lt", 100), True, False),
    ("lte equal float", leaf("data.price", "lte", 99.5), True, False),
    ("gt on a string field with a number", leaf("data.status", "gt", 1), False, False),
    ("gt on a bool field", leaf("data.vip", "gt", 0), False, False),
    ("gte on timestamps", leaf("data.placed_at", "gte", "2026-11-01T00:00:00Z"), True, False),
    ("lt on timestamps", leaf("data.placed_at", "lt", "2026-11-01T00:00:00Z"), False, False),
    ("a nested object", leaf("data.customer.address.country", "equals", "FR"), True, False),
    ("an array index", leaf("data.items.1.sku", "equals", "B-2"), True, False),
    ("an index past the end", leaf("data.items.5.sku", "exists", True), False, False),
    ("a name on an array", leaf("data.items.sku", "exists", True), False, False),
    ("a path through a scalar", leaf("data.status.x", "exists", True), False, False),
    ("outside data", leaf("included", "exists", True), True, False),
    (
        "all of two that hold",
        {"all": [leaf("data.status", "equals", "paid"), leaf("data.total", "gte", 100)]},
        True,
        False,
    ),
    (
        "all with one that fails",
        {"all": [leaf("data.status", "equals", "paid"), leaf("data.total", "gte", 1000)]},
        False,
        False,
    ),
    (
        "any with one that holds",
        {"any": [leaf("data.total", "gte", 1000), leaf("data.tags", "exists", True)]},
        True,
        False,
    ),
    (
        "any with none that holds",
        {"any": [leaf("data.total", "gte", 1000), leaf("data.x", "exists", True)]},
        False,
        False,
    ),
    ("not of a leaf that holds", {"not": leaf("data.status", "equals", "paid")}, False, True),
    ("not includes absent fields", {"not": leaf("data.status", "equals", "x")}, True, True),
    (
        "the README's example",
        {
            "all": [
                leaf("data.status", "equals", "paid"),
                {"any": [leaf("data.total", "gte", 100), leaf("data.tags", "exists", True)]},
            ]
        },
        True,
        False,
    ),
]


@pytest.mark.parametrize(
    ("condition", "on_paid", "on_empty"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_a_condition_holds_exactly_for_the_payloads_it_describes(
    condition: dict[str, Any], on_paid: bool, on_empty: bool
) -> None:
    parsed = parse(condition)
    assert evaluate(parsed, PAID) is on_paid
    assert evaluate(parsed, EMPTY) is on_empty


@pytest.mark.parametrize(
    "payload", [{}, {"data": None}, {"data": []}, {"data": "x"}, {"data": {"status": {}}}, []]
)
def test_evaluation_never_raises_on_odd_payloads(payload: Any) -> None:
    condition = parse(
        {
            "any": [
                leaf("data.status", "gt", 1),
                leaf("data.status", "in", ["a"]),
                {"not": leaf("data.0", "equals", None)},
            ]
        }
    )
    assert isinstance(evaluate(condition, payload), bool)


def _deep(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf("data.a", "exists", True)
    for _ in range(depth - 1):
        node = {"not": node}
    return node


# (raw condition, [(message fragment, path)])
INVALID: list[tuple[str, Any, list[tuple[str, str]]]] = [
    ("not an object", "data.status == paid", [("must be an object", "")]),
    ("an empty object", {}, [("a condition is", "")]),
    ("an unknown combinator", {"some": []}, [("a condition is", "")]),
    ("two combinators", {"all": [], "any": []}, [("a condition is", "")]),
    ("an empty all", {"all": []}, [("non-empty array", ".all")]),
    ("any not a list", {"any": {"field": "a", "exists": True}}, [("non-empty array", ".any")]),
    ("a leaf without operator", {"field": "data.a"}, [("exactly one operator", "")]),
    (
        "a leaf with two operators",
        {"field": "data.a", "gt": 1, "lt": 5},
        [("exactly one operator", "")],
    ),
    ("an unknown operator", {"field": "data.a", "matches": "x"}, [("'matches' is not", "")]),
    ("a field not a string", {"field": 3, "exists": True}, [("dotted path", ".field")]),
    ("an empty field", {"field": "", "exists": True}, [("dotted path", ".field")]),
    ("an empty segment", {"field": "data..a", "exists": True}, [("dotted path", ".field")]),
    ("a long field", {"field": "a" * 256, "exists": True}, [("dotted path", ".field")]),
    ("many segments", {"field": ".".join("a" * 17), "exists": True}, [("segments", ".field")]),
    ("exists not a bool", {"field": "a", "exists": "yes"}, [("true or false", ".exists")]),
    ("equals an object", {"field": "a", "equals": {"b": 1}}, [("string, number", ".equals")]),
    ("equals a list", {"field": "a", "equals": [1]}, [("string, number", ".equals")]),
    ("in not a list", {"field": "a", "in": "x"}, [("array of 1 to", ".in")]),
    ("in an empty list", {"field": "a", "not_in": []}, [("array of 1 to", ".not_in")]),
    ("in too long", {"field": "a", "in": list(range(101))}, [("array of 1 to", ".in")]),
    ("in with an object", {"field": "a", "in": [1, {}]}, [("string, number", ".in[1]")]),
    ("gt a bool", {"field": "a", "gt": True}, [("number or a string", ".gt")]),
    ("gt null", {"field": "a", "gt": None}, [("number or a string", ".gt")]),
    ("gt infinity", {"field": "a", "gt": float("inf")}, [("finite", ".gt")]),
    ("a long string", {"field": "a", "equals": "x" * 1025}, [("longer than", ".equals")]),
    ("too deep", _deep(MAX_DEPTH + 1), [("nested too deep", ".not.not.not.not.not")]),
    (
        "too many leaves",
        {"any": [leaf("data.a", "exists", True)] * (MAX_LEAVES + 1)},
        [(f"has {MAX_LEAVES + 1} leaves", "")],
    ),
    (
        "too many bytes",
        {"any": [leaf("data.a", "in", ["x" * 1000] * 10)] * 2},
        [("bytes; at most", "")],
    ),
    (
        "every problem at its place",
        {"all": [leaf("data.a", "gt", []), {"any": [{"field": "b"}, leaf("", "exists", 1)]}]},
        [
            ("number or a string", ".all[0].gt"),
            ("exactly one operator", ".all[1].any[0]"),
            ("dotted path", ".all[1].any[1].field"),
            ("true or false", ".all[1].any[1].exists"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_an_invalid_condition_is_refused_with_every_problem_and_its_place(
    raw: Any, expected: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidCondition) as caught:
        parse(raw)
    problems = caught.value.problems
    assert [path for _, path in problems] == [path for _, path in expected], problems
    for (message, _), (fragment, _) in zip(problems, expected, strict=True):
        assert fragment in message


def test_the_limits_themselves_are_allowed() -> None:
    parse(_deep(MAX_DEPTH))
    parse({"any": [leaf("data.a", "exists", True)] * (MAX_LEAVES - 1)})
    parse(leaf("data.a", "in", list(range(MAX_IN_ITEMS))))
    assert MAX_BYTES >= 16 * 1024


def test_the_canonical_form_keeps_the_meaning_and_is_stable() -> None:
    raw = {
        "all": [
            {"equals": "paid", "field": "data.status"},
            {"not": {"in": [1, 2.5, "x", None, True], "field": "data.n"}},
        ]
    }
    canonical = to_json(parse(raw))
    assert canonical == raw
    assert list(canonical["all"][0]) == ["field", "equals"]
    assert to_json(parse(canonical)) == canonical
