"""What the acceptance tests share: an engine on the test's own database, for the looks the
test process takes at what the hub processes did."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import create_engine


@pytest.fixture
async def engine(fresh_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_db, pool_size=3)
    yield engine
    await engine.dispose()
