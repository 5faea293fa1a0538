"""The migrations are the schema: on an empty database, alembic's head must match the models
exactly, and the whole history must go down to nothing and up again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import alembic_config, create_engine
from hub.store.models import Base
from tests.conftest import create_database, db_url, drop_database


@pytest.fixture
async def empty_engine() -> AsyncIterator[AsyncEngine]:
    """An engine on a brand-new database that no migration has touched."""
    name = await create_database()
    engine = create_engine(db_url(name), pool_size=1)
    try:
        yield engine
    finally:
        await engine.dispose()
        await drop_database(name)


def _alembic(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, revision)


async def alembic(engine: AsyncEngine, action: str, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_alembic, action, revision)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


async def differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return await conn.run_sync(_differences)


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(_tables)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_revision)


MODEL_TABLES = set(Base.metadata.tables)


def _model_checks_and_partial_indexes() -> dict[str, tuple[set[str], set[str]]]:
    """Per table: its check constraints' names and its partial indexes' names, from the models.

    Autogenerate compares neither, so they are checked by name here.
    """
    found = {}
    for table in Base.metadata.tables.values():
        checks = {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        partial = {
            str(i.name)
            for i in table.indexes
            if i.dialect_options["postgresql"].get("where") is not None
        }
        found[table.name] = (checks, partial)
    return found


def _db_checks_and_partial_indexes(connection: Connection) -> dict[str, tuple[set[str], set[str]]]:
    inspector = inspect(connection)
    found = {}
    for table in MODEL_TABLES:
        checks = {str(c["name"]) for c in inspector.get_check_constraints(table)}
        partial = {
            str(i["name"])
            for i in inspector.get_indexes(table)
            if i.get("dialect_options", {}).get("postgresql_where")
        }
        found[table] = (checks, partial)
    return found


async def test_upgrading_an_empty_database_to_head_gives_exactly_the_models_schema(
    empty_engine: AsyncEngine,
) -> None:
    assert await tables(empty_engine) == set()

    await alembic(empty_engine, "upgrade", "head")

    assert await differences(empty_engine) == []
    assert await tables(empty_engine) == MODEL_TABLES | {"alembic_version"}
    assert await revision(empty_engine) is not None
    async with empty_engine.connect() as conn:
        in_database = await conn.run_sync(_db_checks_and_partial_indexes)
    assert in_database == _model_checks_and_partial_indexes()


async def test_the_migrations_go_down_to_base_and_up_again(empty_engine: AsyncEngine) -> None:
    await alembic(empty_engine, "upgrade", "head")
    head = await revision(empty_engine)

    await alembic(empty_engine, "downgrade", "base")

    assert await tables(empty_engine) <= {"alembic_version"}
    assert await revision(empty_engine) is None

    await alembic(empty_engine, "upgrade", "head")

    assert await revision(empty_engine) == head
    assert await differences(empty_engine) == []


async def test_upgrading_a_database_already_at_head_changes_nothing(
    empty_engine: AsyncEngine,
) -> None:
    await alembic(empty_engine, "upgrade", "head")
    head = await revision(empty_engine)

    await alembic(empty_engine, "upgrade", "head")

    assert await revision(empty_engine) == head
    assert await differences(empty_engine) == []


async def test_0008_strips_credentials_from_stored_stomp_addresses(
    empty_engine: AsyncEngine,
) -> None:
    await alembic(empty_engine, "upgrade", "0003")
    addresses = ["stomp://hub:s3cret@broker-1:61613", "stomp+ssl://broker-2:61614"]
    async with empty_engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO stores (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 's')"
            )
        )
        for number, (integration_type, configuration) in enumerate(
            [
                ("stomp", {"addresses": addresses, "destination": "/queue/q"}),
                ("stomp", {"addresses": ["stomp://:p@b:1", "stomp://b:2"], "destination": "/q"}),
                ("webhook", {"url": "https://example.com/@hook"}),
            ],
            start=1,
        ):
            await conn.execute(
                text(
                    "INSERT INTO integrations (id, store_id, name, integration_type, observes, "
                    "configuration, signing_secret, updated_at) VALUES (:id, "
                    "'00000000-0000-0000-0000-000000000001', 'i', :type, ARRAY['*'], "
                    "CAST(:configuration AS jsonb), 'whsec_x', '2026-01-01')"
                ),
                {
                    "id": f"00000000-0000-0000-0000-00000000010{number}",
                    "type": integration_type,
                    "configuration": orjson.dumps(configuration).decode(),
                },
            )

    await alembic(empty_engine, "upgrade", "head")

    async with empty_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT configuration, updated_at > '2026-01-02' AS bumped "
                    "FROM integrations ORDER BY id"
                )
            )
        ).all()
    assert [(row.configuration, row.bumped) for row in rows] == [
        (
            {
                "addresses": ["stomp://broker-1:61613", "stomp+ssl://broker-2:61614"],
                "destination": "/queue/q",
            },
            True,
        ),
        ({"addresses": ["stomp://b:1", "stomp://b:2"], "destination": "/q"}, True),
        ({"url": "https://example.com/@hook"}, False),
    ]


#: One store's rows: two integrations, an event, a job of it for each, and a log of each job.
_ONE_STORE = (
    "INSERT INTO stores (id, name) VALUES (:store, gen_random_uuid()::text)",
    """INSERT INTO integrations (id, store_id, name, enabled, integration_type, observes,
                                 configuration, signing_secret)
       SELECT gen_random_uuid(), :store, 'integration', true, 'webhook', '{order.created}',
              '{}', 'secret'
       FROM generate_series(1, 2)""",
    """INSERT INTO events (id, store_id, triggered_by, payload)
       VALUES (gen_random_uuid(), :store, 'order.created', '{}')""",
    """INSERT INTO integration_jobs (id, store_id, event_id, integration_id, triggered_by)
       SELECT gen_random_uuid(), :store, e.id, i.id, 'order.created'
       FROM events AS e JOIN integrations AS i USING (store_id)
       WHERE store_id = :store""",
    """INSERT INTO integration_logs (id, store_id, integration_id, job_id, attempt, succeeded,
                                     processing_time)
       SELECT gen_random_uuid(), store_id, integration_id, id, 1, true, 0.1
       FROM integration_jobs WHERE store_id = :store""",
)
_COUNTED = ("integrations", "events", "integration_jobs", "integration_logs")


async def _counts(engine: AsyncEngine, store: UUID) -> dict[str, int]:
    async with engine.connect() as conn:
        return {
            table: (
                await conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE store_id = :store"),
                    {"store": store},
                )
            ).scalar_one()
            for table in _COUNTED
        }


async def test_deleting_a_store_or_an_integration_removes_everything_of_it_through_the_parents(
    fresh_db: str,
) -> None:
    """Jobs and logs keep only their parents' foreign keys (migration 0012): the rows of a
    deleted integration or store still go, through those parents, and another store's stay."""
    gone, kept = uuid4(), uuid4()
    engine = create_engine(fresh_db, pool_size=1)
    try:
        async with engine.begin() as conn:
            for store in (gone, kept):
                for statement in _ONE_STORE:
                    await conn.execute(text(statement), {"store": store})
        whole = {"integrations": 2, "events": 1, "integration_jobs": 2, "integration_logs": 2}
        assert await _counts(engine, gone) == await _counts(engine, kept) == whole

        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "DELETE FROM integrations WHERE id = (SELECT min(id::text)::uuid "
                    "FROM integrations WHERE store_id = :store)"
                ),
                {"store": gone},
            )
        half = {"integrations": 1, "events": 1, "integration_jobs": 1, "integration_logs": 1}
        assert await _counts(engine, gone) == half

        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM stores WHERE id = :store"), {"store": gone})
        assert await _counts(engine, gone) == dict.fromkeys(_COUNTED, 0)
        assert await _counts(engine, kept) == whole
    finally:
        await engine.dispose()
