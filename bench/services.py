"""What the benchmark runs against: a throwaway database and real `hub` processes.

The database is created fresh on `HUB_BENCH_DATABASE_URL` (default: the local server the tests
use, `postgresql://postgres@127.0.0.1:5432/postgres`) and dropped at the end. When that server
cannot be reached the embedded PostgreSQL (`hub.store.engine.start_embedded`) is started under a
temporary directory instead, and stopped at the end.

The hub runs as the console script next to this interpreter: `hub serve --no-worker` (the API)
and `hub worker` (the dispatcher), each with the benchmark's `HUB_*` settings, logging to files
under the run's work directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from bench.procstats import children
from hub.store.engine import plain_url, start_embedded

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
HUB = Path(sys.executable).with_name("hub")

#: Settings the benchmark sets itself; any other `HUB_*` variable of the caller is passed on
#: (and recorded), so `HUB_DB_POOL_SIZE=20 make bench` measures that setting.
OWN_SETTINGS = frozenset(
    {
        "HUB_DATABASE_URL",
        "HUB_DATA_DIR",
        "HUB_HOST",
        "HUB_PORT",
        "HUB_PUBLIC_URL",
        "HUB_LOG_LEVEL",
        "HUB_LOG_FORMAT",
        "HUB_ALLOWED_NETWORKS",
        "HUB_WORKER_CONCURRENCY",
    }
)


class BenchError(RuntimeError):
    """A service the benchmark needs is missing or misbehaved; the message says which."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the database --------------------------------------------------------------------------------


@dataclass
class Database:
    """A throwaway database on a server; `url` is the hub's `HUB_DATABASE_URL`."""

    admin_url: str
    name: str
    embedded_dir: Path | None = None
    """Set when the embedded server was started for this run (and must be stopped)."""

    @property
    def url(self) -> str:
        return (
            make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False)
        )

    @property
    def kind(self) -> str:
        return "embedded" if self.embedded_dir else "server"


async def _admin(admin_url: str, sql: str, timeout: float = 60) -> None:
    conn = await asyncpg.connect(plain_url(admin_url), timeout=10)
    try:
        await conn.execute(sql, timeout=timeout)
    finally:
        await conn.close()


async def _reachable(admin_url: str) -> str | None:
    """None if a connection works, else why not."""
    try:
        conn = await asyncpg.connect(plain_url(admin_url), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    await conn.close()
    return None


async def create_database(work_dir: Path) -> Database:
    """A new empty database: on HUB_BENCH_DATABASE_URL's server, else on an embedded one."""
    admin_url = os.environ.get("HUB_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    embedded_dir: Path | None = None
    problem = await _reachable(admin_url)
    if problem is not None:
        if os.environ.get("HUB_BENCH_DATABASE_URL"):
            raise BenchError(f"HUB_BENCH_DATABASE_URL cannot be reached: {problem}")
        print(
            f"bench: PostgreSQL at {admin_url} is not reachable ({problem}); "
            "starting the embedded server",
            flush=True,
        )
        embedded_dir = Path(tempfile.mkdtemp(prefix="hub-bench-pg-"))
        try:
            admin_url = await asyncio.to_thread(start_embedded, embedded_dir)
        except Exception as exc:
            shutil.rmtree(embedded_dir, ignore_errors=True)
            raise BenchError(
                f"no PostgreSQL: {admin_url} is unreachable and the embedded server did not "
                f"start ({exc}); start PostgreSQL or set HUB_BENCH_DATABASE_URL"
            ) from exc
    name = f"hub_bench_{secrets.token_hex(5)}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    return Database(admin_url, name, embedded_dir)


async def drop_database(db: Database) -> None:
    try:
        await _admin(db.admin_url, f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        if db.embedded_dir is not None:
            _stop_embedded(db.embedded_dir)


def _stop_embedded(data_dir: Path) -> None:
    pidfile = data_dir / "pgdata" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    shutil.rmtree(data_dir, ignore_errors=True)


# --- hub processes -------------------------------------------------------------------------------


def passed_settings() -> dict[str, str]:
    """The caller's own `HUB_*` settings that the hub processes get too."""
    return {
        k: v
        for k, v in os.environ.items()
        if k.startswith("HUB_") and k not in OWN_SETTINGS and not k.startswith("HUB_BENCH_")
    }


@dataclass
class HubProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> list[int]:
        """This process and its children (the copies of `--processes N`), while it runs."""
        return [self.pid, *children(self.pid)] if self.running() else []

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@dataclass
class Hub:
    """The hub's processes of one run; `stop_all` in a `finally` leaves none behind."""

    database_url: str
    work_dir: Path
    worker_concurrency: int
    api_processes: int = 1
    api_port: int = field(default_factory=free_port)
    started: list[HubProcess] = field(default_factory=list)
    secret_key: str | None = None
    """A run's own HUB_SECRET_KEY (the key that encrypts stored credentials), unless the caller
    set one."""

    def prepare(self) -> None:
        """Generate a HUB_SECRET_KEY for the run when the caller has none and the hub knows
        `hub secrets generate-key`."""
        if "HUB_SECRET_KEY" in passed_settings():
            return
        with contextlib.suppress(BenchError):
            lines = self.run_cli("secrets", "generate-key", timeout=60).split()
            self.secret_key = lines[-1] if lines else None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env |= passed_settings()
        env |= {
            "HUB_DATABASE_URL": self.database_url,
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(self.api_port),
            "HUB_PUBLIC_URL": self.api_url,
            "HUB_LOG_LEVEL": "warning",
            "HUB_LOG_FORMAT": "console",
            "HUB_ALLOWED_NETWORKS": "127.0.0.0/8",
            "HUB_WORKER_CONCURRENCY": str(self.worker_concurrency),
        }
        if self.secret_key is not None:
            env["HUB_SECRET_KEY"] = self.secret_key
        # The per-key API rate limit and the integrations quota (the fan-out scenario's store
        # holds more than its default 1,000) are a deployment's policy, not the hub's capacity:
        # off, unless the caller sets them.
        env.setdefault("HUB_API_RATE_LIMIT", "0")
        env.setdefault("HUB_MAX_INTEGRATIONS_PER_STORE", "0")
        return env

    def _spawn(self, name: str, *args: str) -> HubProcess:
        if not HUB.exists():
            raise BenchError(f"{HUB} is missing: install the hub first (make install)")
        log_path = self.work_dir / f"{name}-{len(self.started) + 1}.log"
        with log_path.open("wb") as output:
            # The work directory as cwd keeps a developer's `.env` out of the picture.
            process = subprocess.Popen(  # noqa: S603 - the hub's own console script
                [str(HUB), *args],
                env=self.env(),
                cwd=self.work_dir,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started = HubProcess(name, process, log_path)
        self.started.append(started)
        return started

    def run_cli(self, *args: str, timeout: float = 120) -> str:
        """Run a short `hub` command to completion; its output, or a BenchError."""
        if not HUB.exists():
            raise BenchError(f"{HUB} is missing: install the hub first (make install)")
        try:
            done = subprocess.run(  # noqa: S603 - the hub's own console script
                [str(HUB), *args],
                env=self.env(),
                cwd=self.work_dir,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"`hub {' '.join(args)}` took more than {timeout} s") from exc
        if done.returncode != 0:
            raise BenchError(
                f"`hub {' '.join(args)}` failed ({done.returncode}):\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def create_key(self, store: str, role: str) -> str:
        return self.run_cli("keys", "create", "--store", store, "--role", role).strip().split()[-1]

    async def start_api(self, timeout: float = 60) -> HubProcess:
        copies = ("--processes", str(self.api_processes)) if self.api_processes > 1 else ()
        api = self._spawn("api", "serve", "--no-worker", "--no-migrate", *copies)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if not api.running():
                    raise BenchError(f"`hub serve` exited at start:\n{api.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.api_url}/readyz") as response:
                        if response.status == 200 and len(api.pids()) == self._family_size:
                            return api
                if time.monotonic() > deadline:
                    raise BenchError(f"`hub serve` not ready within {timeout} s:\n{api.log_tail()}")
                await asyncio.sleep(0.1)

    @property
    def _family_size(self) -> int:
        """Processes of a running API: itself, or the parent and its copies."""
        return 1 if self.api_processes == 1 else 1 + self.api_processes

    def start_worker(self) -> HubProcess:
        return self._spawn("worker", "worker")

    async def stop(self, proc: HubProcess, timeout: float = 30) -> int:
        """SIGTERM (a graceful stop), SIGKILL after `timeout`; the exit code."""
        if proc.running():
            proc.process.send_signal(signal.SIGCONT)
            proc.process.terminate()
        deadline = time.monotonic() + timeout
        while proc.running():
            if time.monotonic() > deadline:
                proc.process.kill()
                break
            await asyncio.sleep(0.05)
        return proc.process.wait(10)

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.running():
                proc.process.send_signal(signal.SIGCONT)
                proc.process.terminate()
        deadline = time.monotonic() + 15
        for proc in self.started:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.process.wait(remaining)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.process.wait(5)
