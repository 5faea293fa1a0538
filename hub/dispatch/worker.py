"""The dispatcher: claims due jobs, hands each to its deliverer, records every attempt.

One `Worker` per process, any number of processes per database. The loop:

1. clear the wake-up flag, claim up to the free slots' worth of due jobs (one statement, a lease
   per job), start one task per job; a full batch means more may be due, so claim again;
2. otherwise sleep until a NOTIFY from a publish transaction, slots freeing up after the worker
   was saturated (a quarter of them, or a few milliseconds after the first: claims stay
   batches), the next scheduled retry, or the polling interval, whichever comes first.

A claim that took some jobs is followed by another at once (capped integrations may have left
jobs behind); one that took none although jobs are due (their integrations are at their limits)
waits for a slot to free up, a NOTIFY or the poll, never spinning.

**Fairness and backpressure.** Retries may hold only a share of the slots, and rate-limited
integrations are paced by limiters of this process (`hub.dispatch.limits`); the claim itself
takes first attempts and retries in turn and enforces `max_in_flight` (`hub.store.claiming`).

Each delivery task asks the retry policy what follows and queues an `AttemptRecord`; one
recorder task writes queued records in batches (log rows + job updates + the circuit breaker's
clock in one statement), so busy workers make one round trip for many attempts. A delivered job
keeps its lease until its record is written, so the records waiting count against the slots
once there are more of them than `record_allowance` (a record batch's worth, or the slots if
more): the worker then claims only as fast as it records, and holds at most its concurrency
plus that allowance in leases (rather than delivering on while a slow or absent database lets
the leases of delivered jobs run out, for them to be delivered again). A retention
task purges old logs and finished jobs in bounded batches (`hub.store.retention`), and expired
console sessions. Given a `Heartbeat` (`hub worker`), the worker also keeps its process's row in
the registry fresh (`hub.services.processes`) as one more side task, and deletes it on the way
out.

**Per-delivery cost.** Claims and records run on the pool's bare asyncpg connections
(`hub.store.engine.driver`) as prepared statements, in autocommit where one statement does
the work; an integration's delivery target (secrets decrypted, configuration validated) is
built once per version of the integration and kept (`Targets`).

`stop()` stops claiming; jobs claimed but not started yet (waiting for their rate limiter) are
released at once, for another worker to take without waiting for the lease to expire;
in-flight attempts get `grace_seconds` to finish, then are cancelled and recorded as
interrupted, and every queued record is written before `run()` returns. A side task that
crashes stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.base import Delivery, DeliveryResult, VapidKey
from deliverers.registry import DelivererRegistry
from hub.dispatch.limits import RateLimits, retry_slots
from hub.dispatch.targets import Targets
from hub.errors import SecretsUnreadable, TargetUnavailable, UnknownIntegrationType
from hub.retry import Fail, Retry, Succeed, decide
from hub.services import operational
from hub.services.processes import Heartbeat, new_process_id
from hub.settings import Settings
from hub.store import attempts, claiming, enqueue, notices, retention, rollup, vapid
from hub.store.engine import distrust_connections, driver, plain_url, storage_unavailable

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
BREAKER_TRIPS = Counter(
    "hub_breaker_trips_total", "Integrations the circuit breaker disabled (this process)"
)
PURGED = Counter("hub_purged_rows_total", "Rows deleted by retention, by table", ["table"])

CLAIM_BATCH = 100
#: Once saturated, the longest a freed slot waits for others before the worker claims again.
REFILL_DELAY = 0.005
RECORD_BATCH = 500
INTERRUPTED = "The hub stopped before the attempt finished; it will be retried"
#: While a purge pass still finds full batches, the next one comes this many times sooner.
RETENTION_CATCH_UP = 5


@dataclass(frozen=True, slots=True)
class _Metrics:
    """The metrics' children of one integration type (`.labels()` is a lookup per call)."""

    seconds: Histogram
    succeeded: Counter
    failed: Counter

    @classmethod
    def of(cls, integration_type: str) -> _Metrics:
        return cls(
            seconds=ATTEMPT_SECONDS.labels(integration_type),
            succeeded=ATTEMPTS.labels(integration_type, "succeeded"),
            failed=ATTEMPTS.labels(integration_type, "failed"),
        )


def new_owner() -> str:
    """A lease owner id unique to this worker: its process id in the registry's format."""
    return new_process_id()


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
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.registry = registry
        self.database_url = database_url
        self.owner = owner or (heartbeat.identity.id if heartbeat else new_owner())
        self._rand = rand
        self.heartbeat = heartbeat
        if heartbeat is not None:
            heartbeat.in_flight = lambda: self.in_flight
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
        self._blocked = False
        self._inflight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._retry_slots = retry_slots(self._concurrency)
        #: Free slots that make a saturated worker claim again at once (see `_done`).
        self._refill = max(1, min(CLAIM_BATCH, self._concurrency // 4))
        self._refill_timer: asyncio.TimerHandle | None = None
        self._due_in: float | None = None
        self._retries: set[uuid.UUID] = set()
        self._rate_limits = RateLimits()
        self._targets = Targets(vapid_keys=self._vapid_key)
        self._metrics: dict[str, _Metrics] = {}
        self._unstarted: list[uuid.UUID] = []
        self.purged_rows = 0
        self._records: asyncio.Queue[attempts.AttemptRecord] = asyncio.Queue()
        #: Records queued or being written: their jobs are still leased by this worker.
        self._unrecorded = 0
        self.record_allowance = max(self._concurrency, RECORD_BATCH)
        """Records that may wait before they take slots (module docstring)."""
        self._last_release = 0.0
        self._give_up_at = float("inf")
        self.attempts_recorded = 0

    @property
    def in_flight(self) -> int:
        """Jobs claimed by this worker and not yet settled (delivering or waiting to start)."""
        return len(self._inflight)

    @property
    def waiting_for_limiter(self) -> int:
        """Jobs claimed and waiting for their integration's rate limiter."""
        return self._rate_limits.waiting

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
        side_tasks = [
            recorder,
            listener,
            asyncio.create_task(self._retention(), name="hub-retention"),
            asyncio.create_task(self._rollup(), name="hub-rollup"),
        ]
        if self.heartbeat is not None:
            side_tasks.append(asyncio.create_task(self.heartbeat.run(), name="hub-heartbeat"))
        try:
            await self._loop(side_tasks=tuple(side_tasks))
        finally:
            await self._settle_inflight()
            await self._release_unstarted()
            for task in side_tasks:
                if task is not recorder:
                    task.cancel()
            if not recorder.done():
                drained = asyncio.create_task(self._records.join())
                await asyncio.wait([drained, recorder], return_when=asyncio.FIRST_COMPLETED)
                drained.cancel()
            recorder.cancel()
            for task in side_tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.heartbeat is not None:
                await self.heartbeat.leave()
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
            # Records beyond the allowance take slots too (module docstring).
            free -= max(0, self._unrecorded - self.record_allowance)
            if free <= 0 and len(self._inflight) < self._concurrency:
                self._blocked = True  # the next record written wakes the loop (`_write`)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.worker_poll_interval)
                continue
            wanted = min(free, CLAIM_BATCH)
            claimed = await self._claim(wanted) if wanted > 0 else 0
            self._saturated = len(self._inflight) >= self._concurrency
            if claimed > 0 and not self._saturated:
                continue  # more may be due, also behind integrations that hit their limits
            timeout = poll
            if not self._saturated:
                # Asked in the claim's transaction when it took nothing (no second round trip).
                due_in = self._due_in if claimed == 0 and wanted > 0 else await self._next_due_in()
                if due_in is not None and due_in > 0:
                    timeout = min(poll, due_in)
                elif due_in is not None:
                    # Due jobs, none of which may be taken now (limits, or other workers' locks):
                    # wait for a slot to free up, a NOTIFY or the poll rather than spin.
                    self._blocked = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _claim(self, limit: int) -> int:
        # In autocommit, one round trip per statement: the claim is one statement, and what
        # may follow it only settles jobs this worker has just leased. Should that fail, the
        # claimed jobs still start, and the unsettled ones come back when their leases expire.
        jobs: list[claiming.ClaimedJob] = []
        try:
            async with driver(self.engine) as db:
                now = time.monotonic()
                if now - self._last_release >= self.settings.worker_poll_interval:
                    self._last_release = now
                    released = await claiming.release_stalled(db)
                    if released:
                        log.warning("stalled_jobs_released", count=released)
                jobs = await claiming.claim(
                    db,
                    owner=self.owner,
                    limit=limit,
                    lease=self._lease,
                    retry_limit=self._retry_slots - len(self._retries),
                    excluded=self._rate_limits.throttled(),
                )
                gone = [j for j in jobs if not j.integration_live and not j.integration_tripped]
                if gone:
                    await claiming.cancel_claimed(db, self.owner, gone)
                held = [job.id for job in jobs if job.integration_tripped]
                if held:
                    await claiming.hold_claimed(db, self.owner, held)
                self._due_in = None if jobs else await claiming.next_due_in(db)
        except Exception as exc:
            self._due_in = None
            if storage_unavailable(exc):
                distrust_connections()
            error = str(exc) or type(exc).__name__
            if jobs:
                log.warning("claimed_jobs_not_settled", error=error, claimed=len(jobs))
            else:
                if self._stopping.is_set():
                    return 0
                log.warning("claim_failed", error=error)
                await asyncio.sleep(min(self.settings.worker_poll_interval, 1.0))
                return 0
        CLAIMED.inc(len(jobs))
        started = 0
        for job in jobs:
            if job.integration_live:
                task = asyncio.create_task(self._attempt(job), name=f"hub-job-{job.id}")
                self._inflight[job.id] = task
                if job.attempt > 1:
                    self._retries.add(job.id)
                started += 1
                task.add_done_callback(functools.partial(self._done, job.id))
        IN_FLIGHT.inc(started)
        return len(jobs)

    def _done(self, job_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(job_id, None)
        self._retries.discard(job_id)
        IN_FLIGHT.dec()
        if self._blocked:
            self._saturated = self._blocked = False
            self._wake.set()
        elif self._saturated:
            # Claim in batches rather than one job per freed slot: wake at once when enough
            # slots are free, else shortly (a slow delivery never holds the free slots idle).
            if self._concurrency - len(self._inflight) >= self._refill:
                self._saturated = False
                self._wake.set()
            elif self._refill_timer is None:
                self._refill_timer = asyncio.get_running_loop().call_later(
                    REFILL_DELAY, self._refill_now
                )

    def _refill_now(self) -> None:
        self._refill_timer = None
        if self._saturated:
            self._saturated = False
            self._wake.set()

    async def _next_due_in(self) -> float | None:
        try:
            async with driver(self.engine) as db:
                return await claiming.next_due_in(db)
        except Exception:
            return None

    # --- one attempt -------------------------------------------------------------------------

    async def _delivery(self, job: claiming.ClaimedJob) -> Delivery:
        return Delivery(
            job_id=job.id,
            attempt=job.attempt,
            event_id=job.event_id,
            triggered_by=job.triggered_by,
            payload=job.payload,
            event_time=job.event_time,
            target=await self._targets.get(job),
            ordering_value=job.ordering_value,
        )

    async def _vapid_key(self, store_id: uuid.UUID) -> VapidKey | None:
        """The store's VAPID key pair, for the targets of its `web_push` integrations."""
        async with self.engine.connect() as conn:
            record = await vapid.get_vapid_key(conn, store_id)
        return None if record is None else VapidKey(record.public_key, record.private_key)

    async def _ready(self, job: claiming.ClaimedJob) -> bool:
        """Wait for the integration's rate limit. False when the worker stops first: the job
        has not started, so its lease is to be released rather than left to expire."""
        try:
            await self._rate_limits.wait(job.integration_id, job.rate_limit, self._stopping)
        except asyncio.CancelledError:
            self._unstarted.append(job.id)
            raise
        if self._stopping.is_set():
            self._unstarted.append(job.id)
            return False
        return True

    async def _attempt(self, job: claiming.ClaimedJob) -> None:
        if not await self._ready(job):
            return
        started = time.perf_counter()
        try:
            try:
                deliverer = self.registry.get(job.integration_type)
                result = await deliverer.deliver(await self._delivery(job))
            except (UnknownIntegrationType, SecretsUnreadable, TargetUnavailable) as exc:
                result = DeliveryResult(False, time.perf_counter() - started, error_detail=str(exc))
            except ValidationError:
                result = DeliveryResult(
                    False,
                    time.perf_counter() - started,
                    error_detail="The integration's configuration is invalid; update it",
                )
            except Exception:
                log.exception(
                    "deliverer_crashed",
                    job_id=str(job.id),
                    integration_id=str(job.integration_id),
                    attempt=job.attempt,
                )
                result = DeliveryResult(
                    False,
                    time.perf_counter() - started,
                    error_detail="The deliverer failed unexpectedly; the attempt will be retried",
                )
        except asyncio.CancelledError:
            # Stopping past the grace period: the attempt ran, so its outcome is recorded.
            result = DeliveryResult(False, time.perf_counter() - started, error_detail=INTERRUPTED)
            self._queue_record(self._record(job, result))
            raise
        self._queue_record(self._record(job, result))

    def _queue_record(self, record: attempts.AttemptRecord) -> None:
        self._unrecorded += 1
        self._records.put_nowait(record)

    def _record(self, job: claiming.ClaimedJob, result: DeliveryResult) -> attempts.AttemptRecord:
        metrics = self._metrics.get(job.integration_type)
        if metrics is None:
            metrics = self._metrics[job.integration_type] = _Metrics.of(job.integration_type)
        metrics.seconds.observe(result.duration)
        (metrics.succeeded if result.succeeded else metrics.failed).inc()
        kwargs = {"rand": self._rand} if self._rand is not None else {}
        decision = decide(
            attempt=job.attempt,
            succeeded=result.succeeded,
            status_code=result.status_code,
            retry_after=result.retry_after,
            schedule=self.settings.retry_schedule,
            gone=result.gone,
            **kwargs,
        )
        next_at: datetime | None = None
        disable: str | None = None
        failure: str | None = None
        match decision:
            case Succeed():
                status = "succeeded"
            case Retry(delay=delay):
                status, next_at = "pending", datetime.now(UTC) + delay
            case Fail(reason=reason, disable_integration=disable_it):
                status, failure = "failed", reason
                if disable_it:
                    disable = f"Disabled after {reason} to job {job.id}"
                log.warning("job_failed", job_id=str(job.id), attempt=job.attempt, reason=reason)
        return attempts.AttemptRecord(
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
            failure=failure,
            ordering_value=job.ordering_value,
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

    async def _record_batch(self, batch: list[attempts.AttemptRecord]) -> attempts.Recorded:
        """Record a batch: a batch of successes in one statement in autocommit; one that may
        change what the hub reports (a job failing for good, an integration switched off) in a
        transaction that also publishes the operational events it causes."""
        breaker_after = self.settings.breaker_after
        if operational.may_publish(batch, breaker_on=bool(breaker_after)):
            async with self.engine.begin() as conn:
                recorded, _ = await operational.record_attempts(
                    conn, self.owner, batch, breaker_after=breaker_after
                )
                if recorded.proceeded:
                    await enqueue.notify(conn)  # at the commit, with the rest
            return recorded
        async with driver(self.engine) as db:  # a transaction when it needs one
            recorded = await attempts.record_attempts(
                db, self.owner, batch, breaker_after=breaker_after
            )
            if recorded.proceeded:
                await self._wake_others(db)
        return recorded

    async def _write(self, batch: list[attempts.AttemptRecord]) -> None:
        """Write a batch, retrying while the database is away; leases cover the gap."""
        delay = 0.1
        while True:
            try:
                recorded = await self._record_batch(batch)
                self.attempts_recorded += len(batch)
                self._unrecorded -= len(batch)
                if self._blocked or recorded.proceeded:
                    # Recorded jobs no longer count against their integration's max_in_flight
                    # nor, past the allowance, against the slots; and ordered jobs let go by
                    # the ones that ended are due now.
                    self._blocked = False
                    self._wake.set()
                lost = len(batch) - len(recorded.moved)
                if lost:
                    log.warning("leases_lost_before_recording", count=lost)
                for integration_id, reason in recorded.tripped.items():
                    BREAKER_TRIPS.inc()
                    log.warning(
                        "integration_disabled_by_breaker",
                        integration_id=str(integration_id),
                        reason=reason,
                    )
                return
            except Exception as exc:
                if storage_unavailable(exc):
                    distrust_connections()
                log.warning("record_failed", error=str(exc) or type(exc).__name__, count=len(batch))
                if self._stopping.is_set() and time.monotonic() > self._give_up_at:
                    log.error("records_dropped_at_shutdown", count=len(batch))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _wake_others(self, db: asyncpg.Connection) -> None:
        """Tell idle workers that ordered jobs were let go; a wake-up lost costs a poll interval,
        and the batch is recorded already (so nothing here may fail it)."""
        try:
            await enqueue.wake_workers(db)
        except Exception as exc:
            log.warning("wake_up_lost", error=str(exc) or type(exc).__name__)

    async def _release_unstarted(self) -> None:
        """Give back the jobs claimed but never started, so no one waits for their leases."""
        if not self._unstarted:
            return
        try:
            async with self.engine.begin() as conn:
                count = await claiming.release(conn, self.owner, self._unstarted)
            log.info("unstarted_jobs_released", count=count)
        except Exception as exc:
            # Their leases expire instead; nothing is lost.
            log.warning("release_failed", error=str(exc) or type(exc).__name__)
        self._unstarted.clear()

    # --- retention ---------------------------------------------------------------------------

    async def _retention(self) -> None:
        """Purge logs and finished jobs older than `retention_days` (none when it is 0) and
        expired console sessions and access tokens, one bounded pass every `retention_interval`
        seconds (sooner
        while a backlog remains)."""
        normal = self.settings.retention_interval
        interval = normal
        days = self.settings.retention_days
        while True:
            await asyncio.sleep(interval)
            before = datetime.now(UTC) - timedelta(days=days) if days > 0 else None
            try:
                async with self.engine.begin() as conn:
                    purged = await retention.purge(conn, before=before)
            except Exception as exc:
                log.warning("purge_failed", error=str(exc) or type(exc).__name__)
                interval = normal
                continue
            if purged.total:
                self.purged_rows += purged.total
                for table in ("logs", "jobs", "events", "replays", "sessions", "tokens"):
                    PURGED.labels(table).inc(getattr(purged, table))
                log.info(
                    "purged",
                    logs=purged.logs,
                    jobs=purged.jobs,
                    events=purged.events,
                    replays=purged.replays,
                    sessions=purged.sessions,
                    tokens=purged.tokens,
                )
            interval = normal / RETENTION_CATCH_UP if purged.full else normal

    async def _rollup(self) -> None:
        """Roll the logs up into per-minute rows for the console's charts
        (`hub.store.rollup`), one pass every `retention_interval` seconds (sooner while it
        catches up); one worker at a time, the others skip their turn."""
        normal = self.settings.retention_interval
        interval = normal
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.engine.begin() as conn:
                    done = await rollup.roll_up(conn, now=datetime.now(UTC))
            except Exception as exc:
                log.warning("rollup_failed", error=str(exc) or type(exc).__name__)
                interval = normal
                continue
            behind = done.end is not None and done.end < datetime.now(UTC) - rollup.MAX_SPAN / 2
            interval = normal / RETENTION_CATCH_UP if behind else normal

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
        """LISTEN for publishes; while the connection is down the worker polls, and once it is
        back it claims at once (anything may have been published meanwhile)."""

        def heard(listening: bool) -> None:
            if listening:
                self._wake.set()

        await notices.listen(
            plain_url(self.database_url), {enqueue.CHANNEL: self._wake.set}, heard=heard
        )
