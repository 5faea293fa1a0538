"""Group commit: the publish requests a process receives at the same time, written together.

Every publish ends in a commit, and a commit waits for the WAL to reach the disk: one request per
commit caps a process at what one connection's commits allow, however many requests wait. The
publisher queues checked requests (`hub.services.events.prepare`) and `LOOPS` writers each take
whatever has queued up (up to `MAX_EVENTS` events) and write it with one fan-out read and one
insert per store (`hub.services.events.write`): while one batch commits, the next fills. A
request alone is written at once, so at low rates nothing waits for company; under load,
batches grow by themselves. A request is answered only once its batch has committed: a 202
still means stored.

A batch that fails for another reason than the database going away is written again one request
at a time, so only the request at fault gets the error.

The NOTIFY that wakes idle workers for a batch's jobs follows its commit on the same
connection, after the batch's requests are answered: an answer does not wait for that round
trip. A wake-up lost (the database going away in between) costs the workers a poll interval,
never a job. (A NOTIFY from a task and connection of its own, shared by the batches committed
meanwhile, was measured slower at 1,000 publishes/s: p95 13.5 -> 16.7 ms.)

**Admission.** A new publish is refused at once with `Overloaded` (the API's 503 with
`Retry-After`) while the oldest queued request has waited longer than `max_wait` seconds (the
writers cannot keep up), while `MAX_QUEUED` events wait, or while the process's event loop runs
more than `max_lag` late (the process has more requests than CPU: every request waits about
that long in its socket before it is even read, unseen by the queue's wait). The lateness is a
running average of the loop's timers' (`LAG_TICK`, `LAG_WEIGHT`), each sample capped at
`LAG_CAP` x `max_lag`, so that a lone stall (one huge request's parsing) cannot refuse on its
own and only lateness that lasts does. Under overload, what is accepted stays fast and the rest
learns to come back, rather than every request slowing down together; a refusal costs far less
than a publish (`hub.api.shedding`), so refusing early is also what gives the loop its time
back, and the CPU goes to the requests accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.errors import Overloaded
from hub.services import events as event_service
from hub.store.engine import storage_unavailable
from hub.store.records import Published

log = structlog.get_logger(__name__)

BATCHES = Counter("hub_publish_batches_total", "Batches of publish requests written together")
BATCH_EVENTS = Histogram(
    "hub_publish_batch_events",
    "Events written by one batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
REFUSED = Counter("hub_publish_refused_total", "Publishes refused by admission (503)")

#: Writers: one batch can commit while the next is being written.
LOOPS = 2
#: Events written by one batch at most.
MAX_EVENTS = 1000
#: Events queued at most (memory's bound; the max_wait usually refuses long before).
MAX_QUEUED = 20 * MAX_EVENTS
#: Seconds between the event loop lag monitor's samples.
LAG_TICK = 0.01
#: The weight of a new lag sample in the running average: a lone stall (one huge request's
#: parsing) moves it a little, sustained lateness soon.
LAG_WEIGHT = 0.2
#: A lag sample counts for at most this many `max_lag`s: with `LAG_WEIGHT`, a lone stall
#: however long lifts the average to 0.8 `max_lag` at most; three late samples in a row refuse.
LAG_CAP = 4.0


STOPPING = "This process is stopping; publish again (to another one)"
BEHIND = "Too many events are waiting to be stored; publish again after Retry-After"


@dataclass(slots=True)
class _Queued:
    request: event_service.Prepared
    done: asyncio.Future[list[Published]]
    at: float = field(default_factory=time.monotonic)


class Publisher:
    """See the module docstring. `start` it in the process's lifecycle, `stop` it at the end."""

    def __init__(self, engine: AsyncEngine, *, max_wait: float, max_lag: float) -> None:
        self.engine = engine
        self.max_wait = max_wait
        self.max_lag = max_lag
        self._queue: deque[_Queued] = deque()
        self._queued_events = 0
        self._ready = asyncio.Event()
        self._writers: list[asyncio.Task[None]] = []
        self._lag = 0.0
        self._lag_watch: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._writers = [
            asyncio.create_task(self._write_loop(), name=f"hub-publisher-{n}") for n in range(LOOPS)
        ]
        self._lag_watch = asyncio.create_task(self._watch_lag(), name="hub-publisher-lag")

    async def stop(self) -> None:
        """Write what is queued, then stop the writers."""
        self._stopping = True
        self._ready.set()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
        for task in [*self._writers, *filter(None, [self._lag_watch])]:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def publish(self, request: event_service.Prepared) -> list[Published]:
        """Write `request` with whatever else is queued; its results once committed."""
        self.admit()
        queued = _Queued(request, asyncio.get_running_loop().create_future())
        # Retrieved even when the caller has gone (its request cancelled): no stray warnings.
        queued.done.add_done_callback(_retrieve)
        self._queue.append(queued)
        self._queued_events += len(request.events)
        self._ready.set()
        return await asyncio.shield(queued.done)

    def admit(self) -> None:
        """Raise `Overloaded` if a publish arriving now is to be refused (module docstring)."""
        refused = self.refusal()
        if refused is not None:
            raise Overloaded(refused)

    def refusal(self) -> str | None:
        """Why a publish arriving now is to be refused (counted as refused), or None."""
        if self._stopping:
            REFUSED.inc()
            return STOPPING
        if (
            self.waited() > self.max_wait
            or self._lag > self.max_lag
            or self._queued_events >= MAX_QUEUED
        ):
            REFUSED.inc()
            return BEHIND
        return None

    @property
    def stopping(self) -> bool:
        """Whether `stop` was called: every publish from now on is refused (`STOPPING`)."""
        return self._stopping

    def lag(self) -> float:
        """How late the event loop runs its timers lately (seconds, a running average)."""
        return self._lag

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        cap = LAG_CAP * self.max_lag
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            late = min(cap, max(0.0, loop.time() - before - LAG_TICK))
            self._lag += LAG_WEIGHT * (late - self._lag)

    def waited(self) -> float:
        """Seconds the oldest queued request has waited for a writer (0: none waits)."""
        return time.monotonic() - self._queue[0].at if self._queue else 0.0

    def _take(self) -> list[_Queued]:
        batch: list[_Queued] = []
        events = 0
        while self._queue and (
            not batch or events + len(self._queue[0].request.events) <= MAX_EVENTS
        ):
            queued = self._queue.popleft()
            batch.append(queued)
            events += len(queued.request.events)
        self._queued_events -= events
        if not self._queue:
            self._ready.clear()
        return batch

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                await self._ready.wait()
                continue
            batch = self._take()
            BATCHES.inc()
            BATCH_EVENTS.observe(sum(len(q.request.events) for q in batch))
            await self._write(batch)

    async def _write(self, batch: list[_Queued]) -> None:
        together = [q for q in batch if not q.request.all_or_nothing]
        if together:
            await self._write_together(together)
        for queued in batch:
            if queued.request.all_or_nothing:
                await self._write_alone(queued)

    async def _write_together(self, batch: list[_Queued]) -> None:
        try:
            async with self.engine.connect() as conn:
                outcomes = await event_service.write(conn, [q.request for q in batch], wake=False)
                for queued, outcome in zip(batch, outcomes, strict=True):
                    _settle(queued, outcome)
                if event_service.created_jobs(outcomes):
                    await _wake(conn)
        except Exception as exc:
            if all(q.done.done() for q in batch):  # answered: the connection's return failed
                log.warning("publish_connection_lost", error=type(exc).__name__)
                return
            if len(batch) > 1 and not storage_unavailable(exc):
                log.info("publish_batch_split", size=len(batch), error=type(exc).__name__)
                for queued in batch:
                    await self._write_together([queued])
                return
            for queued in batch:
                _settle(queued, exc)

    async def _write_alone(self, queued: _Queued) -> None:
        """A batch naming client ids, in a transaction of its own: should one of its events be
        refused (an idempotency conflict), the others are rolled back with it."""
        try:
            async with self.engine.begin() as conn:
                [results] = event_service.settled(await event_service.write(conn, [queued.request]))
        except Exception as exc:
            _settle(queued, exc)
            return
        _settle(queued, results)


async def _wake(conn: AsyncConnection) -> None:
    """Wake the workers for a batch already answered; never raises (the jobs are stored, and
    the workers' poll finds them)."""
    try:
        await event_service.wake_workers(conn)
    except Exception:
        log.exception("wake_up_failed")


def _settle(queued: _Queued, outcome: event_service.Outcome | BaseException) -> None:
    if queued.done.done():
        return
    if isinstance(outcome, BaseException):
        queued.done.set_exception(outcome)
    else:
        queued.done.set_result(outcome)


def _retrieve(done: asyncio.Future[list[Published]]) -> None:
    if not done.cancelled():
        done.exception()
