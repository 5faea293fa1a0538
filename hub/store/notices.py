"""LISTEN for the store's notices: one loop for every process that reacts to a NOTIFY.

The workers listen on `hub.store.enqueue.CHANNEL` (jobs are due), the web processes on
`hub.store.stores.KEYS_CHANNEL` (a key was revoked: forget the credentials verified lately).
A notice is only as reliable as the connection it arrives on, so `listen` tells its caller
when it starts and stops hearing them (`heard`): a caller that trusts a cache because a notice
would clear it must stop trusting it while the connection is down, and catch up when it is
back (anything may have happened meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import asyncpg
import structlog

log = structlog.get_logger(__name__)

#: Seconds before the first reconnection; doubled after each failure up to `MAX_DELAY`.
FIRST_DELAY = 0.5
MAX_DELAY = 10.0


async def listen(
    database_url: str,
    channels: Mapping[str, Callable[[], None]],
    *,
    heard: Callable[[bool], None],
) -> None:
    """LISTEN on each channel of `channels` and call its function on every notice, until
    cancelled. `heard(True)` once listening (after every reconnection), `heard(False)` when the
    connection is lost or cannot be made; meanwhile it reconnects with a growing delay.
    `database_url` is the plain libpq form (`hub.store.engine.plain_url`)."""
    delay = FIRST_DELAY
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(database_url)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            for channel, react in channels.items():
                await conn.add_listener(channel, lambda *_args, react=react: react())
            delay = FIRST_DELAY
            heard(True)
            await lost.wait()
            log.warning("listener_connection_lost", channels=sorted(channels))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "listener_unavailable",
                channels=sorted(channels),
                error=str(exc) or type(exc).__name__,
            )
        finally:
            heard(False)
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
