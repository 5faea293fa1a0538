"""Shared fixtures: real PostgreSQL databases (migrated with alembic), the app on a real port,
and stores with keys of every role.

Each test session (each xdist worker) migrates one template database; API tests share one copy
of it and stay apart by working in stores of their own, while tests of the dispatcher take a
fresh clone (`fresh_db`) so that no other test's jobs are in their queue.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hub import crypto
from hub.auth import generate_key
from hub.settings import Settings
from hub.ssrf import LOOPBACK
from hub.store import stores
from hub.store.engine import create_engine, migrate, plain_url
from hub.web import create_app

ADMIN_URL = os.environ.get("HUB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

#: The tests' `HUB_SECRET_KEY` (a fixed Fernet key: stored secrets stay readable across tests).
TEST_SECRET_KEY = "hTnP1mN0m2d9V3k5Rj4p0sQ8cW7yXbZa1LqE6uTgHfo="
#: What the tests' deliveries may reach although not public: their loopback sinks and brokers.
TEST_ALLOWED_NETWORKS = ",".join(str(network) for network in LOOPBACK)


@pytest.fixture(scope="session", autouse=True)
def secrets_keyring() -> crypto.Keyring:
    """The process-wide keyring, as `hub serve` installs it from `HUB_SECRET_KEY`."""
    keyring = crypto.Keyring.from_setting(TEST_SECRET_KEY)
    crypto.install(keyring)
    return keyring


def db_url(name: str) -> str:
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(plain_url(ADMIN_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(template: str | None = None) -> str:
    name = f"hub_test_{secrets.token_hex(6)}"
    suffix = f' TEMPLATE "{template}"' if template else ""
    await _admin(f'CREATE DATABASE "{name}"{suffix}')
    return name


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def template_db() -> AsyncIterator[str]:
    """A freshly migrated database, the template of every other one in this session."""
    name = await create_database()
    engine = create_engine(db_url(name), pool_size=1)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    yield name
    await drop_database(name)


@pytest.fixture(scope="session")
async def shared_db(template_db: str) -> AsyncIterator[str]:
    name = await create_database(template_db)
    yield db_url(name)
    await drop_database(name)


@pytest.fixture
async def fresh_db(template_db: str) -> AsyncIterator[str]:
    """A database of this test's own, migrated, with nothing in it."""
    name = await create_database(template_db)
    yield db_url(name)
    await drop_database(name)


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_url": "http://hub.test",
        "retry_schedule": "0.2s,0.2s",
        "worker_poll_interval": 0.2,
        "log_level": "warning",
        "secret_key": TEST_SECRET_KEY,
        "allowed_networks": TEST_ALLOWED_NETWORKS,
        # Tests make bursts of requests with one key; tests/security checks the limit itself.
        "api_rate_limit": 0,
        # A busy test machine can starve a test's event loop for a moment; only
        # tests/integration/test_publisher.py tests publish admission, with its own settings.
        "publish_max_wait": 30,
        "publish_max_lag": 30,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
async def shared_engine(shared_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(shared_db, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def api(shared_db: str, shared_engine: AsyncEngine) -> AsyncIterator[TestClient[Any, Any]]:
    """An HTTP client of the API served on a real loopback port (no dispatcher)."""
    app = create_app(settings_for(shared_db), shared_engine)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@dataclass
class Tenant:
    """A store of a test's own, with one key of each role."""

    name: str
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str = "manage") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def make_tenant(engine: AsyncEngine, name: str | None = None) -> Tenant:
    tenant = Tenant(name or f"store-{secrets.token_hex(4)}")
    async with engine.begin() as conn:
        store = await stores.ensure_store(conn, tenant.name)
        for role in ("view", "manage", "publish", "admin"):
            new = generate_key()
            await stores.insert_key(
                conn, store_id=store.id, role=role, prefix=new.prefix, key_hash=new.digest
            )
            tenant.keys[role] = new.key
    return tenant


@pytest.fixture
async def tenant(shared_engine: AsyncEngine) -> Tenant:
    return await make_tenant(shared_engine)


@pytest.fixture
async def other_tenant(shared_engine: AsyncEngine) -> Tenant:
    return await make_tenant(shared_engine)


def webhook_integration(
    url: str = "https://example.com/hook", *, observes: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A valid create body for a webhook integration."""
    data: dict[str, Any] = {
        "type": "integration",
        "name": "Order hook",
        "description": "Tells the ERP",
        "enabled": True,
        "integration_type": "webhook",
        "observes": observes or ["order.created"],
        "configuration": {"url": url, "secret_key": "very-secret-value"},
    }
    data.update(extra)
    return {"data": data}


def event_body(key: str = "order.created", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "event",
        "triggered_by": key,
        "payload": {"data": {"type": "order", "id": "o-1", "status": "incomplete"}},
    }
    data.update(extra)
    return {"data": data}
