"""Fuzzing the API with schemathesis from its own `/openapi.json`: for every operation a bounded
number of generated requests (valid and not), sent to the app served on a loopback port with a
valid key. Whatever arrives, the answer is never a 5xx and always what the document promises:
a documented status, content type, headers and body schema. And EP's filter grammar, fuzzed with
hypothesis on every list that filters: a 200 or a 400, never a 5xx."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api.openapi import build_openapi
from hub.store.engine import create_engine
from hub.web import create_app
from tests.conftest import (
    create_database,
    db_url,
    drop_database,
    event_body,
    make_tenant,
    settings_for,
    webhook_integration,
)

#: Generated cases per operation: enough to walk each one's parameters and bodies, bounded so
#: that the whole API fuzzes in seconds.
EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_dict(build_openapi("http://127.0.0.1"))


@dataclass
class Served:
    url: str
    headers: dict[str, str]
    ids: dict[str, str]
    """Real ids of the store's resources, by path parameter (`id` of /v2/events: `event`)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="session")
def served(template_db: str) -> Iterator[Served]:
    """The API on a loopback port, in a thread with its own event loop and database, with an
    admin key of a store that has an integration, an event and a job to be found."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-api", daemon=True)
    thread.start()
    port = _free_port()
    state: dict[str, Any] = {}

    async def start() -> Served:
        state["db"] = name = await create_database(template_db)
        url = db_url(name)
        state["engine"] = engine = create_engine(url, pool_size=5)
        tenant = await make_tenant(engine)
        settings = settings_for(url, public_url=f"http://127.0.0.1:{port}")
        app = create_app(settings, engine)
        state["runner"] = runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        served = Served(f"http://127.0.0.1:{port}", tenant.auth("admin"), {})
        # Something to find: half of the generated paths get these ids instead of random ones.
        async with aiohttp.ClientSession(base_url=served.url, headers=served.headers) as http:
            created = await http.post("/v2/integrations", json=webhook_integration())
            served.ids["id"] = (await created.json())["data"]["id"]
            published = await http.post("/v2/events", json=event_body())
            served.ids["event"] = (await published.json())["data"]["id"]
            jobs = await http.get(f"/v2/integrations/{served.ids['id']}/jobs")
            served.ids["job_id"] = (await jobs.json())["data"][0]["id"]
        return served

    async def stop() -> None:
        if "runner" in state:
            await state["runner"].cleanup()
        if "engine" in state:
            await state["engine"].dispose()
        if "db" in state:
            await drop_database(state["db"])

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_generated_request_is_answered_as_documented(case: Any, served: Served) -> None:
    params = case.path_parameters or {}
    # Deleting the seeded integration would leave nothing real for the cases after it.
    if params and case.method != "DELETE" and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        for name in params:
            real = "event" if name == "id" and case.path.startswith("/v2/events/") else name
            if real in served.ids:
                params[name] = served.ids[real]
    case.call_and_validate(base_url=served.url, headers=served.headers, checks=CHECKS, timeout=30)


# --- EP's filter grammar on the served lists -----------------------------------------------------

#: Characters the grammar gives meaning to, and some that it does not.
_FILTER_CHARS = st.sampled_from(list('eqinlkgtd(),:"\\* -_.azZ019T+%\x00é&#'))
_FIELDS = ["enabled", "name", "observes", "status", "created_at", "status_code", "nope", ""]
_SHAPED = st.lists(
    st.tuples(
        st.sampled_from(["eq", "in", "like", "gt", "ge", "lt", "le", "ne"]),
        st.sampled_from(_FIELDS),
        st.lists(
            st.text(_FILTER_CHARS, max_size=10)
            | st.sampled_from(["true", "order.paid", "2026-11-22T10:00:00Z", "9" * 30, "*"]),
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=3,
).map(lambda terms: ":".join(f"{op}({f},{','.join(vs)})" for op, f, vs in terms))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(raw=st.text(_FILTER_CHARS, max_size=40) | _SHAPED, sort=st.sampled_from(["", "-name", "x"]))
def test_any_filter_on_any_list_is_answered_200_or_400_never_5xx(
    served: Served, raw: str, sort: str
) -> None:
    lists = (
        "/v2/integrations",
        f"/v2/integrations/{served.ids['id']}/jobs",
        "/v2/integrations/logs",
        f"/v2/integrations/{served.ids['id']}/jobs/{served.ids['job_id']}/logs",
    )
    query = urlencode([("filter", raw)] + ([("sort", sort)] if sort else []))
    for path in lists:
        url = f"{served.url}{path}?{query}"
        request = urllib.request.Request(url, headers=served.headers)  # noqa: S310 - loopback
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
                status, body = response.status, response.read()
        except urllib.error.HTTPError as refused:
            status, body = refused.code, refused.read()
        assert status in (200, 400), (path, raw, status, body[:500])
        document = orjson.loads(body)
        assert set(document) & {"data", "errors"}, body[:500]
