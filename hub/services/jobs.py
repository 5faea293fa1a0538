"""Job use cases shared by the API and the console."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Conflict, NotFound
from hub.store import enqueue, integrations, jobs
from hub.store.records import JobRecord

RETRYABLE = ("failed", "cancelled")


async def retry(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, job_id: UUID
) -> JobRecord:
    """A new pending job for a failed or cancelled job of an enabled integration (409 else)."""
    integration = await integrations.get_integration(conn, store_id, integration_id)
    job = await jobs.get_job(conn, store_id, integration_id, job_id)
    if integration is None or job is None:
        raise NotFound()
    if job.status not in RETRYABLE:
        raise Conflict(f"Only a failed or cancelled job can be retried; this one is {job.status}")
    if not integration.enabled:
        raise Conflict("The integration is disabled; enable it before retrying its jobs")
    return await enqueue.retry_job(conn, job)
