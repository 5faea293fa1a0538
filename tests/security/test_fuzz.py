"""Fuzzing the API with schemathesis from its own `/openapi.json`: for every operation a bounded
number of generated requests (valid and not), sent to the app served on a loopback port with a
valid key. Whatever arrives, the answer is never a 5xx and always what the document promises:
a documented status, content type, headers and body schema. And EP's filter grammar, fuzzed with
hypothesis on every list that filters: a 200 or a 400, never a 5xx.

Beyond what the document suggests, three classes of hostile input are aimed at every operation
that takes them, since each once reached a 500: bodies whose values are wrapped in deep nesting
(past what the JSON codec can write back), times at the edges of what can be held with extreme
offsets (`0001-01-01T00:00:00+14:00`), and NUL characters in every string of a query or body.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

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
#: The hostile tests start from valid requests, so that what they aim reaches past validation.
valid = schemathesis.openapi.from_dict(
    build_openapi("http://127.0.0.1"),
    config=SchemathesisConfig.from_dict({"generation": {"mode": "positive"}}),
)


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


def _call(case: Any, served: Served, *, real_ids: bool = False) -> None:
    """Send `case` (half of them, or all with `real_ids`, with the store's real ids in the path)
    and check the answer."""
    params = case.path_parameters or {}
    use_real = real_ids or zlib.crc32(repr(case.body).encode()) % 2 == 0
    # Deleting the seeded integration would leave nothing real for the cases after it.
    if params and case.method != "DELETE" and use_real:
        for name in params:
            real = "event" if name == "id" and case.path.startswith("/v2/events/") else name
            if real in served.ids:
                params[name] = served.ids[real]
    case.call_and_validate(base_url=served.url, headers=served.headers, checks=CHECKS, timeout=30)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_generated_request_is_answered_as_documented(case: Any, served: Served) -> None:
    _call(case, served)


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


# --- hostile input -------------------------------------------------------------------------------

#: Cases per operation for each class of hostile input.
HOSTILE_EXAMPLES = 8
_HOSTILE = settings(
    max_examples=HOSTILE_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    # Generated cases only: the document's examples and schemathesis's coverage cases (the
    # explicit phase) do not pass through the hooks, and the first test sends them already.
    # No shrinking: each step is a request, and the failing case is reported as found.
    phases=[Phase.generate],
)


def _own_store(ctx: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    """Without a generated `X-Hub-Store` (another store is a 404 before anything else)."""
    if headers is None:
        return None
    return {k: v for k, v in headers.items() if k.lower() != "x-hub-store"}


def _paths(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, the value itself first."""
    yield here
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*here, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*here, index))


def _replace(value: Any, path: tuple[Any, ...], new: Callable[[Any], Any]) -> Any:
    if not path:
        return new(value)
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _nest(value: Any, levels: int) -> Any:
    """`value` inside `levels` objects and arrays, outermost an object (so that an object, such
    as an event's payload, stays one)."""
    for level in range(levels):
        value = {"x": value} if level % 2 == 0 else [value]
    return value


#: Around the hub's limit (64) and orjson's (it writes 254 levels), up to 500: beyond 1,000 the
#: JSON encoder schemathesis sends with gives up (deeper bodies are test_bad_input.py's).
_LEVELS = st.one_of(
    st.sampled_from([60, 61, 62, 63, 64, 65, 250, 251, 252, 253, 254, 255, 300, 500]),
    st.integers(min_value=1, max_value=500),
)


def _documented(ctx: Any) -> list[Any]:
    """The operation's documented example bodies: valid requests to start from."""
    content = ctx.operation.definition.raw.get("requestBody", {}).get("content", {})
    examples = content.get("application/json", {}).get("examples", {})
    return [example["value"] for example in examples.values()]


def _deeply_nested(ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    """A valid body (a documented example, or the generated one) with one of its values (or
    itself) wrapped in deep nesting: often its deepest object, where free-form documents (an
    event's payload) live and validation lets them through."""
    starts = [body, *_documented(ctx)]
    return st.sampled_from(starts).flatmap(_nested_somewhere)


def _nested_somewhere(body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict | list):
        return st.just(body)  # not JSON (a negative case's raw bytes, say): nothing to nest
    places = list(_paths(body))
    objects = [path for path in places if isinstance(_at(body, path), dict)]
    deepest = max(objects, key=len) if objects else places[-1]
    return st.tuples(st.one_of(st.just(deepest), st.sampled_from(places)), _LEVELS).map(
        lambda drawn: _replace(body, drawn[0], lambda value: _nest(value, drawn[1]))
    )


@valid.hooks.apply(_own_store, name="map_headers")
@valid.hooks.apply(_deeply_nested, name="flatmap_body")
@valid.include(lambda ctx: "requestBody" in ctx.operation.definition.raw).parametrize()
@_HOSTILE
def test_deeply_nested_bodies_are_answered_as_documented(case: Any, served: Served) -> None:
    _call(case, served, real_ids=True)


def _is_time(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_OFFSET = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
)
#: Times at the edges of what datetime holds: the offsets that push them out once in UTC (and
#: those that keep them in), then any local time near an edge with any offset RFC 3339 allows.
EXTREME_TIMES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T13:59:59.999+14:00",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T10:00:00.001-14:00",
            "9999-12-31T23:59:59.999999-00:01",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00-14:00",
            "9999-12-31T23:59:59.999999Z",
        ]
    ),
    st.tuples(
        st.sampled_from(["0001-01-01T00:00:00", "0001-01-01T13:59:59", "9999-12-31T10:00:00"]),
        st.one_of(st.just("Z"), _OFFSET),
    ).map("".join),
)


def _with_extreme_times(value: Any) -> st.SearchStrategy[Any]:
    """`value` with times in it (strings that read as one) replaced by extreme times."""
    places = [path for path in _paths(value) if path and _is_time(_at(value, path))]
    if not places:
        return st.just(value)
    # Each time is replaced or kept, so that one alone can be the culprit.
    choices = [st.one_of(st.just(_at(value, path)), EXTREME_TIMES) for path in places]
    replaced = st.tuples(*choices).map(lambda times: _replaced_all(value, places, list(times)))
    if any(len(path) != 1 for path in places) or len(value) == len(places):
        return replaced  # a body, or a query of times only
    # A query's other parameters may be refused first (a 400 for a malformed key): often the
    # times come alone.
    alone = replaced.map(lambda query: {key: query[key] for (key,) in places})
    return st.one_of(replaced, alone)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _replaced_all(value: Any, places: list[tuple[Any, ...]], news: list[Any]) -> Any:
    for path, new in zip(places, news, strict=True):
        value = _replace(value, path, _constant(new))
    return value


def _constant(new: Any) -> Callable[[Any], Any]:
    def replaced(_old: Any) -> Any:
        return new

    return replaced


@valid.hooks.apply(_own_store, name="map_headers")
@valid.hooks.apply(lambda ctx, query: _with_extreme_times(query), name="flatmap_query")
@valid.hooks.apply(lambda ctx, body: _with_extreme_times(body), name="flatmap_body")
@valid.include(path_regex=r"^/v2/integrations/\{id\}/(jobs|replay)$").parametrize()
@_HOSTILE
def test_extreme_times_are_answered_as_documented(case: Any, served: Served) -> None:
    _call(case, served, real_ids=True)


def _with_nul(value: Any) -> st.SearchStrategy[Any]:
    """`value` with a NUL character inserted into every string in it."""
    places = [path for path in _paths(value) if isinstance(_at(value, path), str)]
    if not places:
        return st.just(value)
    positions = st.lists(st.integers(0, 64), min_size=len(places), max_size=len(places))
    return positions.map(
        lambda at: _replaced_all(
            value,
            places,
            [_insert_nul(_at(value, p), i) for p, i in zip(places, at, strict=True)],
        )
    )


def _insert_nul(text: str, index: int) -> str:
    index = min(index, len(text))
    return text[:index] + "\x00" + text[index:]


@valid.hooks.apply(_own_store, name="map_headers")
@valid.hooks.apply(lambda ctx, query: _with_nul(query), name="flatmap_query")
@valid.hooks.apply(lambda ctx, body: _with_nul(body), name="flatmap_body")
@valid.parametrize()
@_HOSTILE
def test_nul_characters_are_answered_as_documented(case: Any, served: Served) -> None:
    _call(case, served, real_ids=True)
