"""List query parameters: Elastic Path's filter grammar, the hub's `filter[...]` forms, and
`sort`, parsed into the store's typed conditions and order (`hub.store.listing`).

**EP's grammar** (`filter=eq(enabled,true):like(name,*orders*)`)::

    filter := term (":" term)*          every term must hold (AND)
    term   := operator "(" field "," value ("," value)* ")"
    value  := bare | quoted             bare: any characters but , ( ) " and surrounding
                                        spaces; quoted: "…" with \\" and \\\\ escapes

- Operators: `eq`, `in` (one or more values: any of them), `like` (`*` stands for any run of
  characters, case ignored), `gt`, `ge`, `lt`, `le`. Which apply depends on the field's kind:
  booleans `eq`; fixed choices `eq`, `in`; text `eq`, `in`, `like`; numbers all but `like`;
  times `gt`, `ge`, `lt`, `le` (RFC 3339 with `Z` or an offset; a `+` that arrived unencoded,
  and so as a space, is taken back).
- Each list names its fields (`ListSpec`); an unknown field or operator, an operator the
  field does not take, the wrong number of values or a value of the wrong kind is a 400 that
  names it, with `source` `filter`. Limits: 4,096 characters, 20 terms, 100 values per `in`,
  1,024 characters per value; a NUL character is refused.

**The `filter[...]` forms** (`filter[enabled]=true`, `filter[status]=failed,cancelled`,
`filter[created_at][gte]=…`) map to the same conditions, with their own rules (event keys
without wildcards for `filter[triggered_by]`, …) and `source` the parameter's name. A
`filter[...]` parameter the list does not know is a 400 too: no filter is ever ignored.

**sort** is one of the list's keys, `-` first for descending (`sort=-created_at`); an unknown
key is a 400. Without it the order is newest first; every order ends with the id.

Everything here is pure: a string in, conditions or a `BadRequest` out (never anything else:
`tests/unit/test_filters.py` fuzzes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from multidict import MultiMapping

from deliverers.config import INTEGRATION_TYPES
from hub.errors import BadRequest
from hub.events import EventCatalogue, is_valid_key, match_candidates, validate_observed
from hub.services.inputs import in_utc
from hub.store.listing import Condition, Op, Order, Value
from hub.store.models import JOB_STATUSES

MAX_FILTER_LENGTH = 4096
MAX_TERMS = 20
MAX_VALUES = 100
MAX_VALUE_LENGTH = 1024
#: Keys one `filter[triggered_by]` may list.
MAX_FILTER_KEYS = 50
INT32 = 2**31
SOURCE = "filter"


class Kind(Enum):
    """What a field holds, which decides its operators and how its values are read."""

    BOOL = "a boolean"
    CHOICE = "one of fixed values"
    TEXT = "text"
    INT = "a number"
    TIME = "a time"
    OBSERVES = "event keys"


OPERATORS: dict[Kind, tuple[Op, ...]] = {
    Kind.BOOL: (Op.EQ,),
    Kind.CHOICE: (Op.EQ, Op.IN),
    Kind.TEXT: (Op.EQ, Op.IN, Op.LIKE),
    Kind.INT: (Op.EQ, Op.IN, Op.GT, Op.GE, Op.LT, Op.LE),
    Kind.TIME: (Op.GT, Op.GE, Op.LT, Op.LE),
    Kind.OBSERVES: (Op.EQ, Op.IN),
}


@dataclass(frozen=True, slots=True)
class Field:
    """A filterable field of a list."""

    kind: Kind
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Bracket:
    """A `filter[...]` parameter: the field it filters, with which operator; `csv` for a
    comma-separated list of values (`IN`)."""

    field: str
    op: Op = Op.EQ
    csv: bool = False


Expand = Callable[[str], tuple[str, ...]]
"""Reads an `observes` filter's event key as the keys an integration must list one of
(`observes_expander`); ValueError with the reason for a key the hub would not accept."""


@dataclass(frozen=True, slots=True)
class ListSpec:
    """One list's query parameters: its filterable fields, its `filter[...]` forms and its
    sort keys."""

    name: str
    fields: Mapping[str, Field]
    brackets: Mapping[str, Bracket]
    sortable: tuple[str, ...]
    checks: Mapping[str, Callable[[str], str | None]] = field(default_factory=dict)
    """Extra rules of `filter[...]` parameters on each value: a reason to refuse, or None."""


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a list request asks for, typed."""

    conditions: tuple[Condition, ...]
    order: Order | None
    """None: the list's default order."""


@dataclass(frozen=True, slots=True)
class Term:
    """One `operator(field,value,…)` of EP's grammar, as written."""

    operator: str
    field: str
    values: tuple[str, ...]


# --- the grammar ---------------------------------------------------------------------------------


def _bad(detail: str, source: str = SOURCE) -> BadRequest:
    return BadRequest(detail, source=source)


def _quoted(raw: str, at: int) -> tuple[str, int]:
    """The quoted value starting at `raw[at] == '"'`, and the index after its closing quote."""
    out: list[str] = []
    i = at + 1
    while i < len(raw):
        char = raw[i]
        if char == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\':
            out.append(raw[i + 1])
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise _bad(f"filter: the quoted value at position {at + 1} is not closed")


def parse_terms(raw: str) -> list[Term]:
    """EP's filter string as terms, or a 400 saying where it goes wrong (grammar only)."""
    if len(raw) > MAX_FILTER_LENGTH:
        raise _bad(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    if not raw.strip():
        raise _bad("filter is empty; write e.g. filter=eq(enabled,true)")
    terms: list[Term] = []
    i, n = 0, len(raw)
    while True:
        start = i
        while i < n and raw[i] not in '(),:"':
            i += 1
        operator = raw[start:i].strip()
        if i >= n or raw[i] != "(" or not operator:
            raise _bad(
                f"filter: expected operator(field,value) at position {start + 1}, such as "
                "eq(enabled,true); terms are joined by :"
            )
        i += 1
        args: list[str] = []
        while True:
            while i < n and raw[i] == " ":
                i += 1
            if i < n and raw[i] == '"':
                value, i = _quoted(raw, i)
                while i < n and raw[i] == " ":
                    i += 1
            else:
                start = i
                while i < n and raw[i] not in '(),"':
                    i += 1
                value = raw[start:i].strip()
                if i < n and raw[i] in '("':
                    raise _bad(
                        f'filter: {raw[i]} at position {i + 1} must be inside a quoted value ("…")'
                    )
            args.append(value)
            if i >= n:
                raise _bad(f"filter: {operator}( is not closed with )")
            if raw[i] == ",":
                i += 1
                continue
            i += 1  # the closing parenthesis
            break
        terms.append(Term(operator, args[0], tuple(args[1:])))
        if len(terms) > MAX_TERMS:
            raise _bad(f"filter has more than {MAX_TERMS} terms")
        if i == n:
            return terms
        if raw[i] != ":":
            raise _bad(f"filter: expected : between terms at position {i + 1}")
        i += 1


# --- values --------------------------------------------------------------------------------------


def parse_time(raw: str) -> datetime | None:
    """An RFC 3339 time with `Z` or an offset, in UTC; None if it is not one, `ValueError` if it
    is one outside what the hub can hold (`hub.services.inputs.TIME_RANGE`)."""
    for candidate in (raw, raw.replace(" ", "+")):
        try:
            value = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if value.tzinfo is None:
            return None
        return in_utc(value)
    return None


TIME_HINT = "an RFC 3339 time with Z or an offset, such as 2026-11-22T10:00:00.000Z"


def _value(spec: Field, raw: str, expand: Expand | None) -> tuple[Value, ...]:
    """`raw` read as a value of `spec`'s kind (OBSERVES: its candidate keys); ValueError with
    the reason otherwise."""
    if "\x00" in raw:
        raise ValueError("must not contain the NUL character")
    if len(raw) > MAX_VALUE_LENGTH:
        raise ValueError(f"values are at most {MAX_VALUE_LENGTH} characters")
    kind = spec.kind
    if kind is Kind.BOOL:
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return (True,)
        if lowered in ("false", "0"):
            return (False,)
        raise ValueError("must be true or false")
    if kind is Kind.CHOICE:
        if raw not in spec.choices:
            raise ValueError("must be " + _alternatives(spec.choices))
        return (raw,)
    if kind is Kind.INT:
        try:
            number = int(raw)
        except ValueError:
            raise ValueError("must be an integer") from None
        if not -INT32 <= number < INT32:
            raise ValueError("is out of range")
        return (number,)
    if kind is Kind.TIME:
        time = parse_time(raw)
        if time is None:
            raise ValueError("must be " + TIME_HINT)
        return (time,)
    if kind is Kind.OBSERVES:
        if expand is None:
            raise ValueError("cannot be read here (no event catalogue)")
        return expand(raw)
    return (raw,)


def _alternatives(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]


def _condition(
    name: str, spec: Field, op: Op, raws: tuple[str, ...], expand: Expand | None
) -> Condition:
    values: list[Value] = []
    for raw in raws:
        values.extend(_value(spec, raw, expand))
    if spec.kind is Kind.OBSERVES:
        return Condition(name, Op.IN, tuple(dict.fromkeys(values)))
    return Condition(name, op, tuple(values))


def parse_filter(raw: str, spec: ListSpec, *, expand: Expand | None = None) -> list[Condition]:
    """EP's `filter` string for the list `spec` as conditions; a 400 naming what is wrong.

    `expand` reads the event keys of an `observes` field (`observes_expander`).
    """
    conditions = []
    for term in parse_terms(raw):
        try:
            op = Op(term.operator)
        except ValueError:
            raise _bad(
                f"filter: unknown operator {term.operator!r}; the operators are "
                + ", ".join(o.value for o in Op)
            ) from None
        found = spec.fields.get(term.field)
        if found is None:
            raise _bad(
                f"filter: unknown field {term.field!r} for {spec.name}; the fields are "
                + ", ".join(sorted(spec.fields))
            )
        allowed = OPERATORS[found.kind]
        if op not in allowed:
            raise _bad(
                f"filter: {op.value} does not apply to {term.field} ({found.kind.value}); use "
                + _alternatives(tuple(o.value for o in allowed))
            )
        count = len(term.values)
        if count == 0:
            raise _bad(f"filter: {op.value}({term.field}) needs a field and a value")
        if op is Op.IN and count > MAX_VALUES:
            raise _bad(f"filter: in({term.field},…) takes at most {MAX_VALUES} values")
        if op is not Op.IN and count != 1:
            raise _bad(f"filter: {op.value}({term.field},…) takes one value, not {count}")
        try:
            conditions.append(_condition(term.field, found, op, term.values, expand))
        except ValueError as exc:
            raise _bad(f"filter: {op.value}({term.field},…): the value {exc}") from None
    return conditions


def _bracket(
    name: str, raw: str, bracket: Bracket, spec: ListSpec, expand: Expand | None
) -> Condition:
    found = spec.fields[bracket.field]
    raws = tuple(part.strip() for part in raw.split(",")) if bracket.csv else (raw,)
    raws = tuple(part for part in raws if part) if bracket.csv else raws
    if not raws or (bracket.csv and len(raws) > MAX_FILTER_KEYS):
        raise _bad(
            f"{name} takes a comma-separated list of 1 to {MAX_FILTER_KEYS} values", source=name
        )
    check = spec.checks.get(name)
    for part in raws:
        reason = check(part) if check is not None else None
        if reason is not None:
            raise _bad(f"{name}: {reason}", source=name)
    try:
        return _condition(bracket.field, found, bracket.op, raws, expand)
    except ValueError as exc:
        raise _bad(f"{name} {exc}", source=name) from None


def parse_sort(raw: str, spec: ListSpec) -> Order:
    """`sort=[-]key` for the list `spec`; a 400 for another key."""
    key = raw.strip()
    descending = key.startswith("-")
    key = key.removeprefix("-")
    if key not in spec.sortable:
        keys = ", ".join(f"{k}, -{k}" for k in spec.sortable)
        raise _bad(f"sort: {spec.name} sort by {keys}; not {raw!r}", source="sort")
    return Order(key, descending=descending)


def parse_query(
    query: MultiMapping[str], spec: ListSpec, *, expand: Expand | None = None
) -> ListQuery:
    """Every filter (`filter`, `filter[...]`, each possibly repeated) and the sort of a list
    request (`request.query`), typed."""
    conditions: list[Condition] = []
    items = list(query.items())
    for name, raw in items:
        if name == "filter":
            conditions += parse_filter(raw, spec, expand=expand)
        elif name.startswith("filter["):
            bracket = spec.brackets.get(name)
            if bracket is None:
                known = ", ".join(spec.brackets)
                raise _bad(
                    f"{name} is not a filter of {spec.name}; use {known} or filter=…", source=name
                )
            conditions.append(_bracket(name, raw, bracket, spec, expand))
    sorts = [raw for name, raw in items if name == "sort"]
    if len(sorts) > 1:
        raise _bad("sort is given more than once", source="sort")
    order = parse_sort(sorts[0], spec) if sorts else None
    return ListQuery(tuple(conditions), order)


# --- the lists -----------------------------------------------------------------------------------


def observes_expander(catalogue: EventCatalogue) -> Expand:
    """How an `observes` filter reads an event key: a concrete key finds the integrations
    that would receive it (those observing it, its `<resource>.*` or `*`); a wildcard finds
    those that list that very wildcard. A key the hub would not accept is a 400."""

    def expand(key: str) -> tuple[str, ...]:
        reason = validate_observed(key, catalogue)
        if reason is not None:
            raise ValueError(reason)
        return match_candidates(key) if is_valid_key(key) else (key,)

    return expand


def _exact_key(value: str) -> str | None:
    if is_valid_key(value):
        return None
    return f"{value!r} is not an event key such as order.paid (no wildcards)"


TIMESTAMPS = {"created_at": Field(Kind.TIME), "updated_at": Field(Kind.TIME)}
CREATED_RANGE = {
    "filter[created_at][gte]": Bracket("created_at", Op.GE),
    "filter[created_at][lte]": Bracket("created_at", Op.LE),
}

INTEGRATIONS = ListSpec(
    name="integrations",
    fields={
        "name": Field(Kind.TEXT),
        "description": Field(Kind.TEXT),
        "enabled": Field(Kind.BOOL),
        "integration_type": Field(Kind.CHOICE, tuple(INTEGRATION_TYPES)),
        "observes": Field(Kind.OBSERVES),
        **TIMESTAMPS,
    },
    brackets={
        "filter[enabled]": Bracket("enabled"),
        "filter[integration_type]": Bracket("integration_type"),
        "filter[observes]": Bracket("observes"),
    },
    sortable=("name", "created_at", "updated_at"),
)

JOBS = ListSpec(
    name="jobs",
    fields={
        "status": Field(Kind.CHOICE, JOB_STATUSES),
        "triggered_by": Field(Kind.TEXT),
        **TIMESTAMPS,
        "completed_at": Field(Kind.TIME),
    },
    brackets={
        "filter[status]": Bracket("status", Op.IN, csv=True),
        "filter[triggered_by]": Bracket("triggered_by", Op.IN, csv=True),
        **CREATED_RANGE,
    },
    sortable=("created_at", "updated_at"),
    checks={"filter[triggered_by]": _exact_key},
)

LOGS = ListSpec(
    name="logs",
    fields={
        "succeeded": Field(Kind.BOOL),
        "status_code": Field(Kind.INT),
        "attempt": Field(Kind.INT),
        "created_at": Field(Kind.TIME),
    },
    brackets={"filter[succeeded]": Bracket("succeeded"), **CREATED_RANGE},
    sortable=("created_at",),
)
