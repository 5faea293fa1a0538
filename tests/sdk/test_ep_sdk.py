"""Elastic Path's own JS SDK (`@elasticpath/js-sdk`, pinned in package-lock.json) against a real
`hub serve`: every `Integrations` method, through the SDK's own auth flow, configured only with
host, protocol, client id and secret (`integrations.cjs`), with a delivery to a loopback sink in
between.

Needs Node.js and npm: without them the test is skipped, except under `CI=true`, where it fails.
`.ci/run` installs the packages (`npm ci` in tests/sdk); when they are missing the test runs
`npm ci` itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.store.engine import create_engine
from hub.store.models import access_tokens
from tests.conftest import make_tenant
from tests.support.processes import Processes
from tests.support.sinks import Recorder, sink_server

SDK_DIR = Path(__file__).parent
SCRIPT = SDK_DIR / "integrations.cjs"
ARTIFACTS = SDK_DIR.parent / "artifacts"
#: The script's steps, in order: every `Integrations` method, and the delivery between.
METHODS = [
    "Create",
    "All",
    "Limit/Offset",
    "Filter",
    "Sort",
    "Get",
    "Update (partial)",
    "Update (whole echo)",
    "delivery",
    "GetJobs",
    "GetLogs",
    "GetAllLogs",
    "GetAllLogsForJob",
    "Delete",
]

pytestmark = pytest.mark.timeout(300)


def _tools() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "Node.js and npm are needed to run Elastic Path's JS SDK (tests/sdk)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; under CI=true they must be installed")
        pytest.skip(reason)
    if not (SDK_DIR / "node_modules" / "@elasticpath" / "js-sdk").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=SDK_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
    return node


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_every_integrations_method_of_eps_js_sdk_works_against_hub_serve(
    fresh_db: str, tmp_path: Path
) -> None:
    node = _tools()
    engine = create_engine(fresh_db, pool_size=1)
    tenant = await make_tenant(engine)
    recorder = Recorder()
    procs = Processes(fresh_db, tmp_path, {})
    work = tmp_path / "sdk"
    work.mkdir()
    try:
        async with sink_server(recorder.handle) as sink_url:
            port = _free_port()
            await procs.start_serve(port)
            env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {
                "HUB_HOST": f"127.0.0.1:{port}",
                "HUB_PROTOCOL": "http",
                "CLIENT_ID": tenant.keys["manage"][:16],
                "CLIENT_SECRET": tenant.keys["manage"],
                "PUBLISH_CLIENT_ID": tenant.keys["publish"][:16],
                "PUBLISH_CLIENT_SECRET": tenant.keys["publish"],
                "SINK_URL": sink_url,
            }
            script = await asyncio.create_subprocess_exec(
                node,
                str(SCRIPT),
                cwd=work,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(script.communicate(), 180)
            finally:
                if script.returncode is None:
                    script.kill()
                    await script.wait()
        async with engine.connect() as conn:
            tokens = (
                await conn.execute(select(func.count()).select_from(access_tokens))
            ).scalar_one()
    finally:
        procs.kill_all()
        await engine.dispose()

    lines = out.decode().strip().splitlines()
    assert lines, f"no output from the script:\n{err.decode()[-4000:]}\n{procs.output()}"
    document: dict[str, Any] = json.loads(lines[-1])
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "ep-sdk-results.json").write_text(json.dumps(document, indent=2))
    results = {result["method"]: result for result in document["results"]}
    failed = [result for result in document["results"] if not result["ok"]]
    assert not failed, f"{failed}\n{err.decode()[-4000:]}\n{procs.output()}"
    assert list(results) == METHODS
    assert script.returncode == 0
    # The SDK took its own tokens (one per client), and the hub delivered the event once, with
    # the secret that the whole-echo update kept although the SDK sent it back masked.
    assert tokens >= 2
    [(headers, body)] = recorder.requests
    assert headers["X-MOLTIN-INTEGRATION-TRIGGER"] == "order.created"
    assert headers["X-MOLTIN-SECRET-KEY"] == "sdk-secret-key-0042"
    assert json.loads(body)["payload"]["data"]["id"] == "sdk-order-1"
