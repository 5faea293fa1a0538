"""Keyset pages: the console's lists, newest first, cut by a cursor rather than an offset.

Every list here is ordered by ``(created_at DESC, id DESC)`` on an index that starts with its
scope and has those two columns next (`ix_integrations_store_created`,
`ix_integration_jobs_integration_created`, `ix_integration_logs_integration_created`,
`ix_integration_logs_store_created`, `ix_events_store_created`, `ix_events_store_resource`), so
a page is one index range scan of ``limit + 1`` rows from the cursor, whatever page it is: an
offset would read and throw away every row before it. The cursor is the ``(created_at, id)`` of
a page's last row (the next, older page: `Window.older_than`) or first row (the previous, newer
page: `Window.newer_than`, read in ascending order and turned round). A row comparison
``(created_at, id) < ($1, $2)`` is an index condition on such an index (both columns run the
same direction).

Lists also say how many rows they hold, counted up to `COUNT_CAP`: an exact count of a large
integration's logs would read them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

COUNT_CAP = 10_000
"""Lists count their rows up to this many; beyond, they say "more than"."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A row's place in a newest-first list."""

    at: datetime
    id: UUID


@dataclass(frozen=True, slots=True)
class Window:
    """Which page: the newest (neither), the one older than a cursor, or the one newer."""

    older_than: Cursor | None = None
    newer_than: Cursor | None = None


@dataclass(frozen=True, slots=True)
class KeysetPage(Generic[T]):
    """A page and the cursors of its neighbours (None: there is none that way)."""

    items: list[T]
    newer: Cursor | None
    """The previous page is the one newer than this (the page's first row)."""
    older: Cursor | None
    """The next page is the one older than this (the page's last row)."""
    total: int
    """Rows of the whole list, counted up to `COUNT_CAP` (+1 beyond: "more than"); -1: not
    counted."""


async def fetch(
    conn: AsyncConnection,
    query: Select[Any],
    *,
    at: ColumnElement[datetime],
    id_: ColumnElement[UUID],
    window: Window,
    limit: int,
    convert: Callable[[Any], T],
    count: Select[Any] | None = None,
    counted: bool = True,
) -> KeysetPage[T]:
    """The page of `query` (its rows filtered, not yet ordered) in `window`.

    `count`, when given, is the query whose rows are counted (up to `COUNT_CAP`); by default
    `query` itself. Without `counted` nothing is counted (`total` is -1): for a filter that no
    index serves, counting would read every row of the scope.
    """
    key = tuple_(at, id_)
    if window.newer_than is not None:
        mark = window.newer_than
        rows = list(
            await conn.execute(
                query.where(key > tuple_(mark.at, mark.id))
                .order_by(at.asc(), id_.asc())
                .limit(limit + 1)
            )
        )
        more_newer = len(rows) > limit
        rows = rows[:limit][::-1]
        more_older = True
    else:
        base = query
        if window.older_than is not None:
            mark = window.older_than
            base = base.where(key < tuple_(mark.at, mark.id))
        rows = list(await conn.execute(base.order_by(at.desc(), id_.desc()).limit(limit + 1)))
        more_older = len(rows) > limit
        rows = rows[:limit]
        more_newer = window.older_than is not None
    items = [convert(r) for r in rows]
    cursors = [_cursor(r) for r in rows]
    return KeysetPage(
        items=items,
        newer=cursors[0] if more_newer and cursors else None,
        older=cursors[-1] if more_older and cursors else None,
        total=await count_upto(conn, count if count is not None else query) if counted else -1,
    )


def _cursor(row: Any) -> Cursor:
    mapping = row._mapping
    return Cursor(mapping["created_at"], mapping["id"])


async def count_upto(conn: AsyncConnection, query: Select[Any], cap: int = COUNT_CAP) -> int:
    """How many rows `query` has, counting no further than `cap` + 1."""
    limited = query.with_only_columns(query.selected_columns[0]).limit(cap + 1).subquery()
    return int((await conn.execute(select(func.count()).select_from(limited))).scalar_one())


def clauses(*given: ColumnElement[bool] | None) -> Sequence[ColumnElement[bool]]:
    """The conditions that are given (None: no condition)."""
    return [c for c in given if c is not None]
