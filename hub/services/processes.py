"""The process registry and the deployment's status.

**Identity.** Every `hub serve` and `hub worker` process has an id, `host:pid:random` (also the
lease owner of the jobs its dispatcher claims, so a job in flight names its process), a role
(`api`, `worker`, or `api+worker` for `hub serve` with its dispatcher), its host and pid, the
hub's version, and for API processes the address it listens on.

**Heartbeat.** One mechanism for every process: `Heartbeat.run` writes the process's row every
`HUB_HEARTBEAT_INTERVAL` seconds (with its jobs in flight), deletes the rows of processes not seen
for `HUB_HEARTBEAT_STALE_AFTER` (killed ones), and hands what it counted to `on_beat` (the API's
rate-limit share, `hub.ratelimit.Share`). `hub.runner` runs it beside the web app of `hub serve`;
the dispatcher of `hub worker` runs it as one of its side tasks. A heartbeat that cannot reach the
database logs and tries again at the next interval: the process keeps its last share meanwhile,
and other processes see it go stale. A stopping process deletes its row (`leave`).

**Status.** `status` is what `GET /v2/status`, `hub status` and the Prometheus gauges show:
the live processes, the queue by lane, the oldest due job's age, and the last minute's
deliveries (`hub.store.processes` says which index serves each figure).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import hub
from hub.store import processes
from hub.store.processes import Beat, Deliveries, ProcessRecord, QueueStatus

log = structlog.get_logger(__name__)

API_PROCESSES_SEEN = Gauge(
    "hub_api_processes_seen",
    "Live API processes this process's last heartbeat counted (its rate limits' divisor)",
)
#: The window of `DeploymentStatus.deliveries`.
RECENT = timedelta(minutes=1)


def new_process_id() -> str:
    """A process id unique in the deployment: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this process is in the registry (see the module docstring)."""

    id: str
    role: str
    host: str
    pid: int
    version: str
    address: str | None = None

    @classmethod
    def of(cls, role: str, *, address: str | None = None) -> Identity:
        return cls(
            id=new_process_id(),
            role=role,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=hub.__version__,
            address=address,
        )


class Heartbeat:
    """This process's row in the registry, kept fresh (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        identity: Identity,
        *,
        interval: float,
        stale_after: float,
        in_flight: Callable[[], int] = lambda: 0,
        on_beat: Callable[[Beat], None] | None = None,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.interval = interval
        self.stale_after = timedelta(seconds=stale_after)
        self.in_flight = in_flight
        self.on_beat = on_beat
        self.last: Beat | None = None

    async def beat(self) -> Beat | None:
        """One heartbeat; None (and a warning) when the database did not answer in time."""
        me = self.identity
        try:
            async with asyncio.timeout(max(self.interval, 1.0)):
                async with self.engine.begin() as conn:
                    seen = await processes.beat(
                        conn,
                        process_id=me.id,
                        role=me.role,
                        host=me.host,
                        pid=me.pid,
                        version=me.version,
                        address=me.address,
                        jobs_in_flight=max(0, self.in_flight()),
                        stale_after=self.stale_after,
                    )
        except Exception as exc:
            log.warning("heartbeat_failed", error=str(exc) or type(exc).__name__)
            return None
        if seen.removed:
            log.info("stale_processes_removed", count=seen.removed)
        if self.last is None or seen.api_processes != self.last.api_processes:
            log.info("api_processes_seen", count=seen.api_processes, workers=seen.worker_processes)
        self.last = seen
        if me.role in processes.API_ROLES:
            API_PROCESSES_SEEN.set(seen.api_processes)
        if self.on_beat is not None:
            self.on_beat(seen)
        return seen

    async def run(self) -> None:
        """Beat now and then every `interval` seconds, until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def leave(self) -> None:
        """Delete this process's row (it is stopping); a failure only leaves it to go stale."""
        try:
            async with asyncio.timeout(2.0):
                async with self.engine.begin() as conn:
                    await processes.leave(conn, self.identity.id)
        except Exception as exc:
            log.warning("heartbeat_leave_failed", error=str(exc) or type(exc).__name__)
            return
        log.info("process_left", process_id=self.identity.id)


@dataclass(frozen=True, slots=True)
class DeploymentStatus:
    """The deployment at one instant (see the module docstring)."""

    processes: list[ProcessRecord]
    queue: QueueStatus
    deliveries: Deliveries
    """Attempts recorded within `RECENT`, by outcome."""


async def status(conn: AsyncConnection, *, stale_after: float) -> DeploymentStatus:
    """The live processes, the queue and the last minute's deliveries."""
    return DeploymentStatus(
        processes=await processes.live_processes(conn, stale_after=timedelta(seconds=stale_after)),
        queue=await processes.queue_status(conn),
        deliveries=await processes.recent_deliveries(conn, RECENT),
    )
