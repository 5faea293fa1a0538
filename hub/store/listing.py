"""What the store's list queries take: typed conditions and an order, and the SQL they become.

A list (integrations, jobs, logs) names the columns it can be filtered and sorted on; the API
edge parses its query parameters (EP's `filter=eq(enabled,true):like(name,*orders*)`, the
hub's older `filter[enabled]=true`, `sort=-created_at`) into these records, already typed
(booleans, datetimes, integers, UUIDs), and the list query turns them into SQL here.

- `EQ` and `IN` compare for equality; on an array column (`observes`) they mean "shares an
  entry with" (`&&`).
- `LIKE` takes EP's pattern, where `*` stands for any run of characters and everything else is
  literal (`%`, `_` and `\\` are escaped); it ignores case (`ILIKE`).
- `GT`, `GE`, `LT`, `LE` compare.
- Every order ends with the id, in the direction of the key, so pages are stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement
from sqlalchemy.dialects.postgresql import ARRAY


class Op(StrEnum):
    """The comparisons a condition can make (EP's filter operators)."""

    EQ = "eq"
    IN = "in"
    LIKE = "like"
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"


Value = bool | int | str | datetime | UUID


@dataclass(frozen=True, slots=True)
class Condition:
    """`field op values`: one constraint of a list; a list's conditions combine with AND.

    `values` holds one value, except for `IN` (one or more).
    """

    field: str
    op: Op
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Order:
    """Sort by `field`, then by id in the same direction."""

    field: str
    descending: bool = True


NEWEST_FIRST = Order("created_at", descending=True)
"""Every list's default order."""


def like_pattern(pattern: str) -> str:
    """EP's `*` wildcard pattern as a LIKE pattern with `\\` as the escape character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def where(
    conditions: Sequence[Condition], columns: Mapping[str, ColumnElement[Any]]
) -> list[ColumnElement[bool]]:
    """The SQL of `conditions` on the list whose filterable columns are `columns`.

    A field outside `columns` is a programming error (the API edge only lets known ones
    through), so it raises `KeyError`.
    """
    clauses: list[ColumnElement[bool]] = []
    for condition in conditions:
        column = columns[condition.field]
        values = list(condition.values)
        op = condition.op
        if isinstance(column.type, ARRAY):
            if op not in (Op.EQ, Op.IN):
                raise ValueError(f"{op} does not apply to the array column {condition.field}")
            clauses.append(column.overlap(values))
        elif op is Op.EQ:
            value = values[0]
            clauses.append(column.is_(value) if isinstance(value, bool) else column == value)
        elif op is Op.IN:
            clauses.append(column.in_(values))
        elif op is Op.LIKE:
            clauses.append(column.ilike(like_pattern(str(values[0])), escape="\\"))
        elif op is Op.GT:
            clauses.append(column > values[0])
        elif op is Op.GE:
            clauses.append(column >= values[0])
        elif op is Op.LT:
            clauses.append(column < values[0])
        else:
            clauses.append(column <= values[0])
    return clauses


def order_by(
    order: Order, columns: Mapping[str, ColumnElement[Any]], id_column: ColumnElement[Any]
) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """`ORDER BY <field>, id` in `order`'s direction (`KeyError` for a field not in
    `columns`)."""
    column = columns[order.field]
    if order.descending:
        return column.desc(), id_column.desc()
    return column.asc(), id_column.asc()
