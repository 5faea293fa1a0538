"""Core statements compiled once for the driver connection, and the literals that let a
statement match a partial index (`hub.store`'s SQL rule).

A hot statement composed from parts (the claim's lanes and limits; `cancel_pending`, which the
API runs through SQLAlchemy and a 410 runs on the driver connection) is written in the expression
language, compiled once by `Compiled.of` and run by asyncpg as a prepared statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.elements import ColumnClause

# Literals, not bound parameters, where a partial index's predicate must be matched: a generic
# plan of a prepared statement cannot prove `status = $1` implies `status = 'pending'`.
PENDING: ColumnClause[str] = literal_column("'pending'")
DELIVERING: ColumnClause[str] = literal_column("'delivering'")
HELD: ColumnClause[str] = literal_column("'held'")
CANCELLED: ColumnClause[str] = literal_column("'cancelled'")
FINISHED: tuple[ColumnClause[str], ...] = (
    literal_column("'succeeded'"),
    literal_column("'failed'"),
    CANCELLED,
)
"""The statuses of `ix_integration_jobs_finished`'s predicate (`models.FINISHED_STATUSES`)."""
ZERO: ColumnClause[int] = literal_column("0")
ONE: ColumnClause[int] = literal_column("1")

#: An array of UUIDs, as `= ANY(...)` takes it (one statement text whatever its length).
UUIDS = ARRAY(PG_UUID(as_uuid=True))
#: What statements run on the driver connection are compiled for (`Compiled`).
DRIVER_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]  # SQLAlchemy: untyped


@dataclass(frozen=True, slots=True)
class Compiled:
    """A Core statement compiled once for the driver connection (asyncpg): its SQL text, with
    `$n` placeholders, and the names of its bind parameters in `$n` order.

    Its parameters are passed as asyncpg takes them, without SQLAlchemy's type processing: a
    statement compiled here binds no constants (those are literals) and no JSON.
    """

    sql: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: Any) -> Compiled:
        compiled = statement.compile(dialect=DRIVER_DIALECT)
        names = tuple(compiled.positiontup or ())
        for name in names:
            if compiled.binds[name].value is not None:
                raise ValueError(f"{name!r} is a bound constant: make it a literal")
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("an expanding IN cannot be compiled once; use = ANY(array)")
        return cls(compiled.string, names)

    def args(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]
