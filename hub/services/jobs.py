"""Job use cases shared by the API and the console."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from hub.errors import Conflict, NotFound
from hub.store import enqueue, integrations, jobs, ordered
from hub.store.engine import driver_of
from hub.store.records import JobRecord

RETRYABLE = ("failed", "cancelled")


async def retry(
    conn: AsyncConnection, store_id: UUID, integration_id: UUID, job_id: UUID
) -> JobRecord:
    """A new pending job for a failed or cancelled job of an enabled integration (409 else), in
    the caller's transaction.

    On an ordered integration the new job keeps the key value of the job it retries and goes to
    the **end** of that key's queue, like an event published now: jobs of the key queued since
    may have been delivered already, so the failed job's old place is gone. On an integration
    without an `ordering_key` it is unordered.
    """
    await ordered.lock_queues(await driver_of(conn), [integration_id])
    integration = await integrations.get_integration(conn, store_id, integration_id)
    job = await jobs.get_job(conn, store_id, integration_id, job_id)
    if integration is None or job is None:
        raise NotFound()
    if job.status not in RETRYABLE:
        raise Conflict(f"Only a failed or cancelled job can be retried; this one is {job.status}")
    if not integration.enabled:
        raise Conflict("The integration is disabled; enable it before retrying its jobs")
    value = job.ordering_value if integration.ordering_key is not None else None
    return await enqueue.retry_job(conn, job, ordering_value=value)
