"""A hub assembled in the test process: the API on a loopback port and a dispatcher, both on a
database of the test's own, with whatever deliverers the test hands in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.base import Deliverer
from deliverers.registry import DelivererRegistry
from hub.dispatch.worker import Worker
from hub.settings import Settings
from hub.store.engine import create_engine
from hub.web import create_app
from tests.conftest import Tenant, make_tenant


@dataclass
class Stack:
    """The assembled hub: its API's client and tenant, its database, and its dispatchers."""

    settings: Settings
    engine: AsyncEngine
    client: TestClient[Any, Any]
    tenant: Tenant
    url: str
    workers: list[tuple[Worker, asyncio.Task[None]]]
    registry: DelivererRegistry

    def start_worker(self, **overrides: Any) -> Worker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        worker = Worker(settings, self.engine, self.registry, database_url=self.url)
        self.workers.append((worker, asyncio.create_task(worker.run())))
        return worker

    async def stop_workers(self) -> None:
        for worker, task in self.workers:
            worker.stop()
            await asyncio.wait_for(task, 30)
        self.workers.clear()

    async def create_integration(self, body: dict[str, Any]) -> str:
        response = await self.client.post(
            "/v2/integrations", json=body, headers=self.tenant.auth("manage")
        )
        assert response.status == 201, await response.text()
        integration_id: str = (await response.json())["data"]["id"]
        return integration_id

    async def publish(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(
            "/v2/events", json=body, headers=self.tenant.auth("publish")
        )
        assert response.status == 202, await response.text()
        data: dict[str, Any] = (await response.json())["data"]
        return data

    async def get(self, path: str, role: str = "view") -> dict[str, Any]:
        response = await self.client.get(path, headers=self.tenant.auth(role))
        assert response.status == 200, await response.text()
        document: dict[str, Any] = await response.json()
        return document

    async def integration(self, integration_id: str) -> dict[str, Any]:
        document = await self.get(f"/v2/integrations/{integration_id}")
        data: dict[str, Any] = document["data"]
        return data

    async def jobs(self, integration_id: str) -> list[dict[str, Any]]:
        document = await self.get(f"/v2/integrations/{integration_id}/jobs?page[limit]=100")
        jobs: list[dict[str, Any]] = document["data"]
        return jobs

    async def job_logs(self, integration_id: str, job_id: str) -> list[dict[str, Any]]:
        document = await self.get(f"/v2/integrations/{integration_id}/jobs/{job_id}/logs")
        logs: list[dict[str, Any]] = document["data"]
        return sorted(logs, key=lambda log: int(log["attempt"]))

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar_one()


@contextlib.asynccontextmanager
async def hub_stack(
    url: str, settings: Settings, deliverers: Sequence[Deliverer]
) -> AsyncIterator[Stack]:
    """The hub on database `url`, its deliverers opened; workers start with `start_worker`."""
    engine = create_engine(url, pool_size=5)
    registry = DelivererRegistry(deliverers)
    await registry.open()
    app = create_app(settings, engine)
    stack: Stack | None = None
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            tenant = await make_tenant(engine)
            stack = Stack(settings, engine, client, tenant, url, [], registry)
            yield stack
    finally:
        if stack is not None:
            await stack.stop_workers()
        await registry.aclose()
        await engine.dispose()
