"""`hub.services.inputs.too_deep` reads a document's depth from its bytes: it must agree with the
depth of the parsed document, whatever its strings hold (brackets, quotes, backslashes) and
however it is written (compact, indented, with non-ASCII escaped or not)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hub.services.inputs import DEPTH_PROBLEM, MAX_DEPTH, nesting_problem, too_deep


def depth(value: Any) -> int:
    """Levels of objects and arrays, by walking the parsed document."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


TRICKY = st.sampled_from(['"', "\\", "\\\\", '\\"', "[", "]", "{", "}", "\n", "é", "\u2028"])
STRINGS = st.lists(st.one_of(TRICKY, st.text(max_size=3)), max_size=6).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), STRINGS)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(STRINGS, inner, max_size=4)
    ),
    max_leaves=40,
)


def writings(document: Any) -> list[bytes]:
    return [
        orjson.dumps(document),
        json.dumps(document, indent=2).encode(),
        json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(),
    ]


@settings(max_examples=400, deadline=None)
@given(DOCUMENTS)
@example({"a": '[[[{{{\\"', "b": [[["x"]]]})
@example(["\\", ['\\"]', {"\\\\": "}"}]])
def test_the_depth_read_from_the_bytes_is_the_parsed_documents(document: Any) -> None:
    levels = depth(document)
    for body in writings(document):
        assert not too_deep(body, levels), body
        if levels:
            assert too_deep(body, levels - 1), body


@pytest.mark.parametrize("levels", [MAX_DEPTH, MAX_DEPTH + 1])
def test_a_body_is_refused_past_the_limit_and_only_then(levels: int) -> None:
    document: Any = 'leaf [[[ \\" {{{'
    for n in range(levels):
        document = [document] if n % 2 else {"k": document}
    body = orjson.dumps(document)

    assert nesting_problem(body) == (DEPTH_PROBLEM if levels > MAX_DEPTH else None)


def test_brackets_inside_strings_do_not_count() -> None:
    body = orjson.dumps({"data": "[" * (MAX_DEPTH * 2) + "{" * MAX_DEPTH})

    assert nesting_problem(body) is None
