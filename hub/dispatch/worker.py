"""The dispatcher: claims due jobs, hands each to its deliverer, records every attempt.

One `Worker` per process, any number of processes per database. The loop:

1. clear the wake-up flag, claim up to the free slots' worth of due jobs (one statement, a lease
   per job), start one task per job; a full batch means more may be due, so claim again;
2. otherwise sleep until a NOTIFY from a publish transaction, a slot freeing up after the worker
   was saturated, the next scheduled retry, or the polling interval, whichever comes first.

Each delivery task asks the retry policy what follows and queues an `AttemptRecord`; one
recorder task writes queued records in batches (log rows + job updates in one transaction), so
busy workers make one round trip for many attempts. `stop()` stops claiming; in-flight attempts
get `grace_seconds` to finish, then are cancelled and recorded as interrupted, and every queued
record is written before `run()` returns. A side task that crashes stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.base import Delivery, DeliveryResult, Target
from deliverers.config import CONFIG_MODELS
from deliverers.registry import DelivererRegistry
from hub.errors import UnknownIntegrationType
from hub.retry import Fail, Retry, Succeed, decide
from hub.settings import Settings
from hub.store import queue
from hub.store.engine import plain_url

log = structlog.get_logger(__name__)

ATTEMPTS = Counter(
    "hub_delivery_attempts_total",
    "Delivery attempts recorded, by integration type and outcome",
    ["integration_type", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "hub_delivery_attempt_seconds", "Time one delivery attempt took", ["integration_type"]
)
IN_FLIGHT = Gauge("hub_deliveries_in_flight", "Delivery attempts running in this process")
CLAIMED = Counter("hub_jobs_claimed_total", "Jobs claimed by this process")

CLAIM_BATCH = 100
RECORD_BATCH = 500
INTERRUPTED = "The hub stopped before the attempt finished; it will be retried"


def new_owner() -> str:
    """A lease owner id unique to this worker: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        registry: DelivererRegistry,
        *,
        database_url: str,
        owner: str | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.database_url = database_url
        self.owner = owner or new_owner()
        self._rand = rand
        self._concurrency = settings.worker_concurrency
        # A lease must outlive the longest attempt plus the time to record it.
        self._lease = timedelta(
            seconds=max(settings.worker_lease_seconds, 2 * settings.webhook_timeout + 10)
        )
        self._stopping = asyncio.Event()
        self.stopped = asyncio.Event()
        """Set once `run` has returned (or crashed)."""
        self._wake = asyncio.Event()
        self._saturated = False
        self._inflight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._records: asyncio.Queue[queue.AttemptRecord] = asyncio.Queue()
        self._last_release = 0.0
        self._give_up_at = float("inf")
        self.attempts_recorded = 0

    def stop(self) -> None:
        """Ask the worker to stop; `run` returns once in-flight work is settled."""
        if not self._stopping.is_set():
            self._give_up_at = time.monotonic() + 2 * self.settings.worker_grace_seconds + 1
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        log.info("worker_started", owner=self.owner, concurrency=self._concurrency)
        recorder = asyncio.create_task(self._recorder(), name="hub-recorder")
        listener = asyncio.create_task(self._listen(), name="hub-listener")
        try:
            await self._loop(side_tasks=(recorder, listener))
        finally:
            await self._settle_inflight()
            listener.cancel()
            if not recorder.done():
                drained = asyncio.create_task(self._records.join())
                await asyncio.wait([drained, recorder], return_when=asyncio.FIRST_COMPLETED)
                drained.cancel()
            recorder.cancel()
            for task in (listener, recorder):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.stopped.set()
            log.info("worker_stopped", owner=self.owner, attempts=self.attempts_recorded)

    # --- the claim loop ----------------------------------------------------------------------

    async def _loop(self, side_tasks: tuple[asyncio.Task[None], ...]) -> None:
        poll = self.settings.worker_poll_interval
        while not self._stopping.is_set():
            for task in side_tasks:
                if task.done():
                    # A side task never ends on its own: its death stops the worker.
                    task.result()
                    raise RuntimeError(f"{task.get_name()} ended unexpectedly")
            self._wake.clear()
            free = self._concurrency - len(self._inflight)
            wanted = min(free, CLAIM_BATCH)
            claimed = await self._claim(wanted) if wanted > 0 else 0
            self._saturated = len(self._inflight) >= self._concurrency
            if wanted > 0 and claimed == wanted:
                continue
            timeout = poll
            if not self._saturated:
                due_in = await self._next_due_in()
                if due_in is not None:
                    timeout = min(poll, max(due_in, 0.005))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _claim(self, limit: int) -> int:
        try:
            async with self.engine.begin() as conn:
                now = time.monotonic()
                if now - self._last_release >= self.settings.worker_poll_interval:
                    self._last_release = now
                    released = await queue.release_stalled(conn)
                    if released:
                        log.warning("stalled_jobs_released", count=released)
                jobs = await queue.claim(conn, owner=self.owner, limit=limit, lease=self._lease)
                gone = [job.id for job in jobs if not job.integration_live]
                if gone:
                    await queue.cancel_claimed(conn, self.owner, gone)
        except Exception as exc:
            if self._stopping.is_set():
                return 0
            log.warning("claim_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(min(self.settings.worker_poll_interval, 1.0))
            return 0
        CLAIMED.inc(len(jobs))
        for job in jobs:
            if job.integration_live:
                task = asyncio.create_task(self._attempt(job), name=f"hub-job-{job.id}")
                self._inflight[job.id] = task
                IN_FLIGHT.inc()
                task.add_done_callback(functools.partial(self._done, job.id))
        return len(jobs)

    def _done(self, job_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(job_id, None)
        IN_FLIGHT.dec()
        if self._saturated:
            self._saturated = False
            self._wake.set()

    async def _next_due_in(self) -> float | None:
        try:
            async with self.engine.connect() as conn:
                return await queue.next_due_in(conn)
        except Exception:
            return None

    # --- one attempt -------------------------------------------------------------------------

    def _delivery(self, job: queue.ClaimedJob) -> Delivery:
        configuration = CONFIG_MODELS[job.integration_type].model_validate(job.configuration)
        return Delivery(
            job_id=job.id,
            attempt=job.attempt,
            event_id=job.event_id,
            triggered_by=job.triggered_by,
            payload=job.payload,
            event_time=job.event_time,
            target=Target(
                id=job.integration_id,
                store_id=job.store_id,
                name=job.integration_name,
                description=job.integration_description,
                integration_type=job.integration_type,
                configuration=configuration,
                signing_secrets=(job.signing_secret,),
            ),
        )

    async def _attempt(self, job: queue.ClaimedJob) -> None:
        bound = log.bind(
            job_id=str(job.id), integration_id=str(job.integration_id), attempt=job.attempt
        )
        started = time.perf_counter()
        try:
            try:
                deliverer = self.registry.get(job.integration_type)
                result = await deliverer.deliver(self._delivery(job))
            except UnknownIntegrationType as exc:
                result = DeliveryResult(False, time.perf_counter() - started, error_detail=str(exc))
            except ValidationError:
                result = DeliveryResult(
                    False,
                    time.perf_counter() - started,
                    error_detail="The integration's configuration is invalid; update it",
                )
            except Exception:
                bound.exception("deliverer_crashed")
                result = DeliveryResult(
                    False,
                    time.perf_counter() - started,
                    error_detail="The deliverer failed unexpectedly; the attempt will be retried",
                )
        except asyncio.CancelledError:
            # Stopping past the grace period: the attempt ran, so its outcome is recorded.
            result = DeliveryResult(False, time.perf_counter() - started, error_detail=INTERRUPTED)
            self._records.put_nowait(self._record(job, result))
            raise
        self._records.put_nowait(self._record(job, result))

    def _record(self, job: queue.ClaimedJob, result: DeliveryResult) -> queue.AttemptRecord:
        ATTEMPT_SECONDS.labels(job.integration_type).observe(result.duration)
        outcome = "succeeded" if result.succeeded else "failed"
        ATTEMPTS.labels(job.integration_type, outcome).inc()
        kwargs = {"rand": self._rand} if self._rand is not None else {}
        decision = decide(
            attempt=job.attempt,
            succeeded=result.succeeded,
            status_code=result.status_code,
            retry_after=result.retry_after,
            schedule=self.settings.retry_schedule,
            **kwargs,
        )
        next_at: datetime | None = None
        disable: str | None = None
        match decision:
            case Succeed():
                status = "succeeded"
            case Retry(delay=delay):
                status, next_at = "pending", datetime.now(UTC) + delay
            case Fail(reason=reason, disable_integration=disable_it):
                status = "failed"
                if disable_it:
                    disable = f"Disabled after the endpoint answered 410 Gone to job {job.id}"
                log.warning("job_failed", job_id=str(job.id), attempt=job.attempt, reason=reason)
        return queue.AttemptRecord(
            job_id=job.id,
            store_id=job.store_id,
            integration_id=job.integration_id,
            attempt=job.attempt,
            succeeded=result.succeeded,
            processing_time=round(result.duration, 6),
            status_code=result.status_code,
            body=result.body,
            error_detail=result.error_detail,
            status=status,
            next_attempt_at=next_at,
            disable_reason=disable,
        )

    # --- recording ---------------------------------------------------------------------------

    async def _recorder(self) -> None:
        while True:
            batch = [await self._records.get()]
            while len(batch) < RECORD_BATCH and not self._records.empty():
                batch.append(self._records.get_nowait())
            await self._write(batch)
            for _ in batch:
                self._records.task_done()

    async def _write(self, batch: list[queue.AttemptRecord]) -> None:
        """Write a batch, retrying while the database is away; leases cover the gap."""
        delay = 0.1
        while True:
            try:
                async with self.engine.begin() as conn:
                    moved = await queue.record_attempts(conn, self.owner, batch)
                self.attempts_recorded += len(batch)
                lost = len(batch) - len(moved)
                if lost:
                    log.warning("leases_lost_before_recording", count=lost)
                return
            except Exception as exc:
                log.warning("record_failed", error=str(exc) or type(exc).__name__, count=len(batch))
                if self._stopping.is_set() and time.monotonic() > self._give_up_at:
                    log.error("records_dropped_at_shutdown", count=len(batch))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _settle_inflight(self) -> None:
        if not self._inflight:
            return
        tasks = list(self._inflight.values())
        log.info("worker_draining", inflight=len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=self.settings.worker_grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            log.warning("attempts_interrupted", count=len(pending))

    # --- wake-ups ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for publishes; if the connection drops, poll until it is back."""
        delay = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(plain_url(self.database_url))
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(queue.CHANNEL, lambda *_args: self._wake.set())
                delay = 0.5
                self._wake.set()  # catch up on anything published while not listening
                await lost.wait()
                log.warning("listener_connection_lost")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listener_unavailable", error=str(exc) or type(exc).__name__)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
