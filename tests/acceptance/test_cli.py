"""The `hub` console script as a user runs it: migrate, create/list/revoke keys, and serve (the
served API accepts the keys the CLI makes, and the server stops cleanly on SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import TEST_SECRET_KEY, create_database, db_url, drop_database
from tests.support.processes import HUB

READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def last_line(self) -> str:
        return self.out.rstrip("\n").rsplit("\n", 1)[-1]


@dataclass(frozen=True)
class Cli:
    """Runs `hub` against one database of the test's own, from a directory with no `.env`."""

    database_url: str
    cwd: Path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        return env | {
            "HUB_DATABASE_URL": self.database_url,
            "HUB_LOG_LEVEL": "warning",
            "HUB_SECRET_KEY": TEST_SECRET_KEY,
        }

    async def run(self, *args: str, timeout: float = 60) -> Run:
        process = await asyncio.create_subprocess_exec(
            str(HUB),
            *args,
            env=self.env(),
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        assert process.returncode is not None
        return Run(process.returncode, out.decode(), err.decode())

    @contextlib.asynccontextmanager
    async def serving(self, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[Server]:
        """`hub serve <args>` on a free port, ready; killed on the way out if still running.
        `env` adds settings."""
        port = free_port()
        log = self.cwd / f"serve-{port}.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                str(HUB),
                "serve",
                "--port",
                str(port),
                *args,
                env=self.env() | (env or {}),
                cwd=self.cwd,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        try:
            await server.wait_ready()
            yield server
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


@dataclass(frozen=True)
class Server:
    process: asyncio.subprocess.Process
    url: str
    log: Path

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise AssertionError(f"hub serve exited early:\n{self.output()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/readyz") as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"hub serve not ready in {READY_TIMEOUT} s:\n{self.output()}")

    async def get(self, path: str, key: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {key}"}) as resp,
        ):
            return resp.status

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def cli(tmp_path: Path) -> AsyncIterator[Cli]:
    """The CLI on a brand-new, empty database."""
    name = await create_database()
    try:
        yield Cli(db_url(name), tmp_path)
    finally:
        await drop_database(name)


async def create_key(cli: Cli, store: str, role: str) -> tuple[str, str]:
    """A new key and its id, as `hub keys create` prints them."""
    run = await cli.run("keys", "create", "--store", store, "--role", role)
    assert run.code == 0, run.err
    found = re.search(r"created key ([0-9a-f-]{36})", run.out)
    assert found is not None, run.out
    return run.last_line, found[1]


# --- migrate -------------------------------------------------------------------------------------


async def test_hub_migrate_brings_an_empty_database_to_head_and_can_repeat(cli: Cli) -> None:
    first = await cli.run("migrate")
    again = await cli.run("migrate")

    assert first.code == 0, first.err
    assert "migrated" in first.out
    assert again.code == 0, again.err


# --- keys ----------------------------------------------------------------------------------------


async def test_a_key_made_by_the_cli_works_until_it_is_revoked(cli: Cli) -> None:
    # `hub keys` migrates a new database itself; two at once must not trip over each other.
    (key, key_id), (publisher, _) = await asyncio.gather(
        create_key(cli, "acme", "manage"), create_key(cli, "acme", "publish")
    )

    assert re.fullmatch(r"hub_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    async with cli.serving("--no-worker", "--no-migrate") as server:
        assert await server.get("/v2/integrations", key) == 200
        assert await server.get("/v2/integrations", publisher) == 403  # its role, as asked
        assert await server.get("/v2/integrations", key[:-1] + "x") == 401

        listed = await cli.run("keys", "list")

        assert listed.code == 0, listed.err
        (row,) = [line for line in listed.out.splitlines() if key_id in line]
        assert "acme" in row
        assert "manage" in row
        assert "_".join(key.split("_")[:2]) in row  # the prefix identifies it...
        assert key not in listed.out  # ...but the key itself is never shown again
        assert row.split()[-1] == "active"

        revoked = await cli.run("keys", "revoke", key_id)

        assert revoked.code == 0, revoked.err
        assert key_id in revoked.out
        assert await server.get("/v2/integrations", key) == 401
        listed = await cli.run("keys", "list")
        (row,) = [line for line in listed.out.splitlines() if key_id in line]
        assert row.split()[-1] == "revoked"


async def test_an_unknown_role_is_refused_with_a_clear_message(cli: Cli) -> None:
    run = await cli.run("keys", "create", "--store", "acme", "--role", "owner")

    assert run.code != 0
    assert "--role" in run.err
    assert "owner" in run.err
    assert "view" in run.err  # the choices are listed
    assert "hub_" not in run.out


async def test_revoking_something_that_is_not_a_key_fails_with_a_message(cli: Cli) -> None:
    not_an_id, unknown = await asyncio.gather(
        cli.run("keys", "revoke", "not-an-id"),
        cli.run("keys", "revoke", "00000000-0000-4000-8000-000000000000"),
    )

    assert not_an_id.code != 0
    assert "not a key id" in not_an_id.err
    assert unknown.code != 0
    assert "no active key" in unknown.err


# --- serve ---------------------------------------------------------------------------------------


async def test_hub_serve_migrates_at_start_and_stops_on_sigterm_with_exit_code_0(cli: Cli) -> None:
    async with cli.serving("--no-worker") as server:
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(server.process.wait(), 10)

        assert code == 0, server.output()
        assert time.monotonic() - started < 5
        assert "Traceback" not in server.output()


async def test_hub_serve_with_its_dispatcher_also_stops_on_sigterm_with_exit_code_0(
    cli: Cli,
) -> None:
    async with cli.serving() as server:
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(server.process.wait(), 15)

        assert code == 0, server.output()
        assert time.monotonic() - started < 10
        assert "Traceback" not in server.output()


async def test_hub_serve_cuts_off_slow_clients_and_caps_connections_per_address(cli: Cli) -> None:
    settings = {"HUB_HEADER_TIMEOUT": "1", "HUB_MAX_CONNECTIONS_PER_CLIENT": "3"}
    async with cli.serving("--no-worker", env=settings) as server:
        port = int(server.url.rsplit(":", 1)[1])

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            # From an address of their own: the readiness probe's connections do not count.
            return await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))

        held = [await connect() for _ in range(3)]
        started = time.monotonic()
        for _, writer in held:  # slow lorises: a request line, then nothing more
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n")
            await writer.drain()
        extra_reader, extra_writer = await connect()

        refused = await asyncio.wait_for(extra_reader.read(), 2)
        closed = [await asyncio.wait_for(reader.read(), 5) for reader, _ in held]
        elapsed = time.monotonic() - started
        for _, writer in [*held, (extra_reader, extra_writer)]:
            writer.close()

    assert refused == b"", "a fourth connection from one address is closed on arrival"
    assert closed == [b"", b"", b""], "a loris gets no answer, only a hang-up"
    assert 0.9 <= elapsed <= 3.0, f"closed after {elapsed:.2f} s"
