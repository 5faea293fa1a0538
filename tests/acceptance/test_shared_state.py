"""What several API processes share through the database: a console session started on one
works on the other and after a restart, and ends everywhere at sign-out or revocation; and one
key hammering both processes gets the configured rate in total, not twice it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.models import api_keys, console_sessions
from tests.support.processes import HUB, Processes, api_on, free_port, one_fleet_at_a_time
from tests.support.waiting import eventually

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
FLEET = {"HUB_HEARTBEAT_INTERVAL": "0.5", "HUB_HEARTBEAT_STALE_AFTER": "2"}
pytestmark = pytest.mark.timeout(480)


@pytest.fixture(autouse=True)
def _one_fleet_at_a_time() -> Iterator[None]:
    with one_fleet_at_a_time():
        yield


def browser() -> aiohttp.ClientSession:
    """A browser's cookie jar: cookies of 127.0.0.1 go to every port, as RFC 6265 says."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def csrf_of(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as page:
        assert page.status == 200, await page.text()
        found = CSRF.search(await page.text())
    assert found is not None
    return found.group(1)


async def page(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url, allow_redirects=False) as response:
        return response.status, await response.text()


async def sessions_in_db(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(console_sessions))).scalar_one()


async def test_a_console_session_works_on_every_api_process_and_after_a_restart(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(fresh_db, tmp_path, FLEET)
    one, two = free_port(), free_port()
    a, b = f"http://127.0.0.1:{one}/console", f"http://127.0.0.1:{two}/console"
    async with api_on(fresh_db, engine) as api, browser() as session:
        integration = await api.create_webhook("https://example.com/hook")
        try:
            first, second = procs.start_api(one), procs.start_api(two)
            await procs.wait_ready(first, one)
            await procs.wait_ready(second, two)

            token = await csrf_of(session, f"{a}/login")
            async with session.post(
                f"{a}/login",
                data={"csrf": token, "key": api.tenant.keys["manage"]},
                allow_redirects=False,
            ) as signed_in:
                assert signed_in.status == 303, await signed_in.text()
            # Signed in on one process, served by the other.
            status, text = await page(session, f"{b}/integrations")
            assert status == 200, text
            assert api.tenant.name in text

            # An action on the second; its message shows on the first.
            token = await csrf_of(session, f"{b}/integrations/{integration}")
            async with session.post(
                f"{b}/integrations/{integration}/enabled",
                data={"csrf": token, "enabled": "false"},
                allow_redirects=False,
            ) as acted:
                assert acted.status == 303
            status, text = await page(session, f"{a}/integrations/{integration}")
            assert status == 200
            assert "Disabled: its pending jobs were cancelled" in text
            status, text = await page(session, f"{a}/integrations/{integration}")
            assert "Disabled: its pending jobs were cancelled" not in text, "shown once"

            # The second process restarts: the session outlives it.
            second.terminate()
            assert await procs.wait_exit(second, 15) == 0
            second = procs.start_api(two)
            await procs.wait_ready(second, two)
            status, text = await page(session, f"{b}/integrations")
            assert status == 200, text

            # Signing out on one ends the session on both.
            token = await csrf_of(session, f"{b}/integrations")
            async with session.post(
                f"{b}/logout", data={"csrf": token}, allow_redirects=False
            ) as out:
                assert out.status == 303
            assert (await page(session, f"{a}/integrations"))[0] == 303
            assert await sessions_in_db(engine) == 0

            # Revoking the key ends its sessions on every process.
            token = await csrf_of(session, f"{b}/login")
            async with session.post(
                f"{b}/login",
                data={"csrf": token, "key": api.tenant.keys["view"]},
                allow_redirects=False,
            ) as again:
                assert again.status == 303
            assert (await page(session, f"{a}/integrations"))[0] == 200
            key_id = await key_id_of(engine, api.tenant.keys["view"])
            revoked = await run_hub(procs, "keys", "revoke", key_id)
            assert "1 console sessions ended" in revoked
            assert (await page(session, f"{a}/integrations"))[0] == 303
            assert (await page(session, f"{b}/integrations"))[0] == 303
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()


async def key_id_of(engine: AsyncEngine, key: str) -> str:
    prefix = key.split("_")[1]
    async with engine.connect() as conn:
        value = (
            await conn.execute(select(api_keys.c.id).where(api_keys.c.prefix == prefix))
        ).scalar_one()
    return str(value)


async def run_hub(procs: Processes, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(HUB),
        *args,
        env=procs.env(),
        cwd=procs.log_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


RATE, BURST, SECONDS = 40, 20, 5.0


async def share_of(session: aiohttp.ClientSession, port: int) -> float | None:
    """`hub_api_processes_seen` of the API process on `port`."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    found = re.search(r"^hub_api_processes_seen ([0-9.]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


async def test_one_key_hammering_both_api_processes_gets_the_configured_rate_in_total(
    fresh_db: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    procs = Processes(
        fresh_db,
        tmp_path,
        FLEET | {"HUB_API_RATE_LIMIT": str(RATE), "HUB_API_RATE_BURST": str(BURST)},
    )
    ports = [free_port(), free_port()]
    async with api_on(fresh_db, engine) as api:
        headers = {"Authorization": f"Bearer {api.tenant.keys['view']}"}
        try:
            apis = [procs.start_api(port) for port in ports]
            for process, port in zip(apis, ports, strict=True):
                await procs.wait_ready(process, port)
            async with aiohttp.ClientSession() as session:

                async def both_see_two() -> bool:
                    return all([await share_of(session, port) == 2.0 for port in ports])

                await eventually(both_see_two, timeout=15, what="each process sees 2 APIs")
                answers: Counter[int] = Counter()
                deadline = time.monotonic() + SECONDS

                async def client(offset: int) -> None:
                    n = offset
                    while time.monotonic() < deadline:
                        url = f"http://127.0.0.1:{ports[n % 2]}/v2/integrations"
                        async with session.get(url, headers=headers) as response:
                            await response.read()
                            answers[response.status] += 1
                        n += 1

                started = time.monotonic()
                await asyncio.gather(*(client(i) for i in range(16)))
                elapsed = time.monotonic() - started
        except BaseException:
            print(procs.output())
            raise
        finally:
            procs.kill_all()

    expected = RATE * SECONDS + BURST
    print(
        f"\n[rate limit] rate={RATE}/s burst={BURST} over {elapsed:.1f}s through 2 processes: "
        f"served={answers[200]} (expected {expected:.0f}) refused={answers[429]}"
    )
    assert set(answers) == {200, 429}, answers
    assert answers[429] > answers[200], "the key asked for far more than its rate"
    assert 0.75 * expected <= answers[200] <= 1.25 * expected
