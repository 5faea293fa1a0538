"""EP's filter grammar, the `filter[...]` forms and `sort` (hub/api/filters.py): pure functions
from query strings to the store's typed conditions, or a 400 naming what is wrong; fuzzed with
hypothesis, nothing else ever comes out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from hub.api import filters
from hub.api.filters import INTEGRATIONS, JOBS, LOGS, ListQuery, ListSpec, parse_filter
from hub.errors import BadRequest
from hub.events import load_catalogue
from hub.store.listing import Condition, Op, Order, like_pattern

T = TypeVar("T")
EXPAND = filters.observes_expander(load_catalogue())
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def conditions(raw: str, spec: ListSpec = INTEGRATIONS) -> list[Condition]:
    return parse_filter(raw, spec, expand=EXPAND)


def refused(raw: str, spec: ListSpec = INTEGRATIONS) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        conditions(raw, spec)
    [item] = caught.value.items
    assert item.status == 400
    assert item.source == "filter"
    return caught.value


# --- what it reads -------------------------------------------------------------------------------


def test_the_sdks_filter_becomes_one_typed_condition_per_term() -> None:
    assert conditions("eq(enabled,true):eq(integration_type,webhook)") == [
        Condition("enabled", Op.EQ, (True,)),
        Condition("integration_type", Op.EQ, ("webhook",)),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("eq(enabled,false)", Condition("enabled", Op.EQ, (False,))),
        ("eq(enabled,1)", Condition("enabled", Op.EQ, (True,))),
        (
            "in(integration_type,webhook,stomp)",
            Condition("integration_type", Op.IN, ("webhook", "stomp")),
        ),
        ("like(name,*orders*)", Condition("name", Op.LIKE, ("*orders*",))),
        ("eq(name,Orders to ERP)", Condition("name", Op.EQ, ("Orders to ERP",))),
        ("eq( name , spaced )", Condition("name", Op.EQ, ("spaced",))),
        ('eq(name,"a, (b): \\"c\\" \\\\")', Condition("name", Op.EQ, ('a, (b): "c" \\',))),
        ("gt(created_at,2026-11-22T10:00:00Z)", Condition("created_at", Op.GT, (T0,))),
        ("le(updated_at,2026-11-22T11:00:00+01:00)", Condition("updated_at", Op.LE, (T0,))),
        # A `+` sent unencoded in a query string arrives as a space; it is taken back.
        ("ge(created_at,2026-11-22T11:00:00 01:00)", Condition("created_at", Op.GE, (T0,))),
    ],
)
def test_each_operator_reads_values_of_the_fields_kind(raw: str, expected: Condition) -> None:
    assert conditions(raw) == [expected]


def test_observes_finds_what_would_receive_the_key_as_filter_observes_does() -> None:
    [condition] = conditions("eq(observes,order.paid)")

    assert condition.op is Op.IN
    assert set(condition.values) == {"order.paid", "order.*", "*"}
    assert conditions("in(observes,order.*,customer.created)")[0].values[0] == "order.*"


def test_each_list_has_its_own_fields() -> None:
    assert parse_filter("in(status,failed,cancelled)", JOBS) == [
        Condition("status", Op.IN, ("failed", "cancelled"))
    ]
    assert parse_filter("like(triggered_by,order.*)", JOBS) == [
        Condition("triggered_by", Op.LIKE, ("order.*",))
    ]
    assert parse_filter("eq(succeeded,false):ge(status_code,500)", LOGS) == [
        Condition("succeeded", Op.EQ, (False,)),
        Condition("status_code", Op.GE, (500,)),
    ]


# --- what it refuses, naming it ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("eq(colour,red)", "unknown field 'colour'"),
        ("ne(enabled,true)", "unknown operator 'ne'"),
        ("is_null(description)", "unknown operator 'is_null'"),
        ("like(enabled,tr*)", "like does not apply to enabled"),
        ("eq(created_at,2026-11-22T10:00:00Z)", "eq does not apply to created_at"),
        ("eq(enabled,maybe)", "true or false"),
        ("eq(integration_type,ftp)", "webhook, aws_sqs, stomp, amqp or web_push"),
        ("gt(created_at,yesterday)", "RFC 3339"),
        ("gt(created_at,2026-11-22T10:00:00)", "RFC 3339"),
        ("eq(enabled,true,false)", "takes one value, not 2"),
        ("eq(enabled)", "needs a field and a value"),
        ("eq(observes,Order..x)", "eq(observes"),
        ("eq(enabled,true)eq(name,x)", "expected : between terms"),
        ("eq(enabled,true", "is not closed"),
        ('eq(name,"open', "is not closed"),
        ("eq(name,a(b))", "inside a quoted value"),
        ("enabled", "expected operator(field,value)"),
        ("", "filter is empty"),
        ("eq(name,\x00)", "NUL"),
        ("eq(enabled,true):", "expected operator(field,value)"),
    ],
)
def test_a_bad_filter_is_a_400_naming_what_is_wrong(raw: str, named: str) -> None:
    assert named in refused(raw).items[0].detail


def test_the_limits_hold() -> None:
    assert "20 terms" in refused(":".join(["eq(enabled,true)"] * 21)).items[0].detail
    many = ",".join(["webhook"] * 101)
    assert "at most 100" in refused(f"in(integration_type,{many})").items[0].detail
    assert "longer than" in refused("eq(name," + "x" * 5000 + ")").items[0].detail
    assert "1024" in refused("eq(name," + "x" * 1025 + ")").items[0].detail
    assert "out of range" in refused("eq(status_code,99999999999)", LOGS).items[0].detail


# --- the filter[...] forms, and sort -------------------------------------------------------------


def test_the_older_forms_map_to_the_same_conditions_and_combine_with_eps() -> None:
    query = MultiDict(
        [
            ("filter[status]", "failed, cancelled"),
            ("filter[created_at][gte]", "2026-11-22T10:00:00.000Z"),
            ("filter", "like(triggered_by,order.*)"),
            ("page[limit]", "5"),
        ]
    )

    parsed = filters.parse_query(query, JOBS)

    assert parsed.conditions == (
        Condition("status", Op.IN, ("failed", "cancelled")),
        Condition("created_at", Op.GE, (T0,)),
        Condition("triggered_by", Op.LIKE, ("order.*",)),
    )
    assert parsed.order is None
    assert filters.parse_query(MultiDict([("filter[succeeded]", "true")]), LOGS).conditions == (
        Condition("succeeded", Op.EQ, (True,)),
    )


@pytest.mark.parametrize(
    ("name", "value", "spec"),
    [
        ("filter[enabled]", "maybe", INTEGRATIONS),
        ("filter[color]", "red", INTEGRATIONS),
        ("filter[triggered_by]", "order.*", JOBS),
        ("filter[status]", ",", JOBS),
        ("filter[created_at][lte]", "2026-11-22T10:00:00", LOGS),
        ("filter[created_at][gt]", "2026-11-22T10:00:00Z", LOGS),
    ],
)
def test_a_bad_older_form_is_a_400_whose_source_is_the_parameter(
    name: str, value: str, spec: ListSpec
) -> None:
    with pytest.raises(BadRequest) as caught:
        filters.parse_query(MultiDict([(name, value)]), spec, expand=EXPAND)

    assert caught.value.items[0].source == name


@pytest.mark.parametrize(
    ("raw", "order"),
    [("name", Order("name", descending=False)), ("-updated_at", Order("updated_at"))],
)
def test_sort_takes_a_key_with_an_optional_minus(raw: str, order: Order) -> None:
    assert filters.parse_query(MultiDict([("sort", raw)]), INTEGRATIONS).order == order


@pytest.mark.parametrize(("raw", "spec"), [("name", JOBS), ("-updated_at", LOGS), ("", LOGS)])
def test_a_sort_key_the_list_does_not_have_is_a_400(raw: str, spec: ListSpec) -> None:
    with pytest.raises(BadRequest) as caught:
        filters.parse_query(MultiDict([("sort", raw)]), spec)

    assert caught.value.items[0].source == "sort"
    assert "created_at" in caught.value.items[0].detail


def test_like_patterns_keep_everything_but_the_star_literal() -> None:
    assert like_pattern("*100%_off\\*") == "%100\\%\\_off\\\\%"


# --- fuzzing: never anything but conditions or a 400 ---------------------------------------------

ALPHABET = st.sampled_from(list('eqinlkgtd(),:"\\* -_.azZ019T+\x00é'))
#: Strings shaped like filters, so that most reach past the first character.
SHAPED = st.lists(
    st.tuples(
        st.sampled_from([op.value for op in Op] + ["ne", "", "EQ"]),
        st.sampled_from([*INTEGRATIONS.fields, *JOBS.fields, *LOGS.fields, "", "nope", "name.x"]),
        st.lists(
            st.text(ALPHABET, max_size=12)
            | st.sampled_from(
                [
                    "true",
                    "2026-11-22T10:00:00Z",
                    "0001-01-01T00:00:00+01:00",
                    "99999999999",
                    "order.*",
                ]
            ),
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=4,
).map(lambda terms: ":".join(f"{op}({field},{','.join(values)})" for op, field, values in terms))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.text(ALPHABET, max_size=60) | st.text(max_size=40) | SHAPED)
@example(raw='eq(name,"\\')
@example(raw="ge(created_at,0001-01-01T00:00:00+01:00)")
@example(raw="((((")
def test_any_string_gives_conditions_or_a_400_never_anything_else(raw: str) -> None:
    for spec in (INTEGRATIONS, JOBS, LOGS):
        found = outcome(partial(parse_filter, raw, spec, expand=EXPAND))
        if isinstance(found, BadRequest):
            assert found.items[0].status == 400
            assert found.items[0].detail
            continue
        assert found
        for condition in found:
            assert condition.field in spec.fields
            assert condition.values
            assert all("\x00" not in str(value) for value in condition.values)


QUERY_NAMES = st.sampled_from(
    ["filter", "sort", "filter[status]", "filter[x]", "filter[created_at][gte]"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(QUERY_NAMES, st.text(ALPHABET, max_size=30)), max_size=4))
def test_any_query_gives_a_list_query_or_a_400(pairs: list[tuple[str, str]]) -> None:
    for spec in (INTEGRATIONS, JOBS, LOGS):
        found = outcome(partial(filters.parse_query, MultiDict(pairs), spec, expand=EXPAND))
        if isinstance(found, BadRequest):
            assert found.items[0].status == 400
        else:
            assert isinstance(found, ListQuery)


def outcome(call: Callable[[], T]) -> T | BadRequest:
    """What `call` returns, or the `BadRequest` it raises (anything else fails the test)."""
    try:
        return call()
    except BadRequest as exc:
        return exc
