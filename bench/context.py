"""What every scenario gets: the sizes, the services, the API client, and a SQL connection."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.client import HubClient
from bench.config import BenchConfig
from bench.services import Database, Hub, HubProcess
from bench.sink import SinkProcess


@dataclass
class Bench:
    """One run's world. `integration_id` is the webhook (to the sink) observing `order.created`."""

    config: BenchConfig
    db: Database
    hub: Hub
    sink: SinkProcess
    client: HubClient
    sql: asyncpg.Connection
    """The driver's own connection to the benchmark database (setup and cleanup, never timed
    except in the backlog scenario's claims)."""
    api: HubProcess
    worker: HubProcess
    store_id: str
    integration_id: str

    def pids(self) -> dict[str, list[int]]:
        return {
            "api": self.api.pids(),
            "worker": [self.worker.pid] if self.worker.running() else [],
            "sink": [self.sink.pid],
            "driver": [os.getpid()],
        }

    async def postgres_pids(self) -> list[int]:
        """This database's backends, when the server runs on this machine (else none)."""
        rows = await self.sql.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1",
            self.db.name,
        )
        pids = []
        for row in rows:
            try:
                comm = Path(f"/proc/{row['pid']}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("postgres"):
                pids.append(int(row["pid"]))
        return pids

    def pause_worker(self) -> None:
        self.worker.process.send_signal(signal.SIGSTOP)

    def resume_worker(self) -> None:
        self.worker.process.send_signal(signal.SIGCONT)

    async def pending_jobs(self) -> int:
        value = await self.sql.fetchval(
            "SELECT count(*) FROM integration_jobs WHERE status IN ('pending', 'delivering')"
        )
        return int(value)
