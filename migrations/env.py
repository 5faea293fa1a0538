"""Alembic environment: runs on a connection handed over by `hub.store.engine.migrate`, or on
`HUB_DATABASE_URL` when alembic is invoked directly."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from hub.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def _online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return

    from hub.settings import Settings
    from hub.store.engine import create_engine, database_url

    async def run() -> None:
        engine = create_engine(database_url(Settings()), pool_size=1)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(run())


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `hub migrate`")
_online()
