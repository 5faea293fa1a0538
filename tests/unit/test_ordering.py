"""The key value of an event under an integration's `ordering_key` (`hub.ordering`): the
conditions' paths, strings and numbers as keys, everything else unordered."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from hub import conditions, ordering

PAYLOAD: dict[str, Any] = {
    "data": {
        "id": "o-1",
        "number": 42,
        "integral": 7.0,
        "fraction": 2.5,
        "customer": {"id": "c-9"},
        "items": [{"sku": "s-1"}, {"sku": "s-2"}],
        "nothing": None,
        "flag": True,
        "empty": "",
        "object": {"a": 1},
        "list": [1, 2],
        "long": "x" * 300,
        "edge": "y" * 255,
    }
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("data.id", "o-1"),
        ("data.customer.id", "c-9"),
        ("data.items.1.sku", "s-2"),  # digits index an array, as in conditions
        ("data.number", "42"),
        ("data.integral", "7"),  # one key with the integer 7
        ("data.fraction", "2.5"),
        ("data.edge", "y" * 255),
        ("data.long", "sha256:" + hashlib.sha256(b"x" * 300).hexdigest()),
        # no key: delivered unordered
        ("data.missing", None),
        ("data.items.2.sku", None),
        ("data.items.x", None),
        ("data.id.deeper", None),
        ("data.nothing", None),
        ("data.flag", None),
        ("data.empty", None),
        ("data.object", None),
        ("data.list", None),
    ],
)
def test_the_key_value_at_a_path(path: str, expected: str | None) -> None:
    assert ordering.key_value(PAYLOAD, path) == expected


def test_no_ordering_key_and_a_path_that_no_longer_parses_are_unordered() -> None:
    assert ordering.key_value(PAYLOAD, None) is None
    assert ordering.key_value(PAYLOAD, "data..id") is None


def test_a_string_and_a_number_that_read_alike_are_one_key() -> None:
    assert ordering.key_value({"id": "7"}, "id") == ordering.key_value({"id": 7}, "id") == "7"


def test_the_path_walker_is_the_conditions_one() -> None:
    for path in ("data.id", "data.items.0.sku", "data.customer"):
        segments = conditions.parse_path(path)
        assert ordering.parse_ordering_key(path) == segments
        found = conditions.resolve(PAYLOAD, segments)
        assert conditions.evaluate(conditions.parse({"field": path, "exists": True}), PAYLOAD) is (
            found is not conditions.ABSENT
        )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("", "non-empty names"),
        ("data..id", "non-empty names"),
        ("data.", "non-empty names"),
        ("a" * 256, "at most 255 characters"),
        (".".join(["a"] * 17), "has 17 segments"),
        (42, "must be a dotted path string"),
    ],
)
def test_an_ordering_key_must_be_a_dotted_path(raw: object, problem: str) -> None:
    with pytest.raises(conditions.InvalidPath, match=problem):
        ordering.parse_ordering_key(raw)
