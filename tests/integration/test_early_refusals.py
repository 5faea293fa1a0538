"""Early refusals (`hub.api.shedding`): under overload, a whole, plain publish is refused from its
connection's bytes, with the same answer as aiohttp's path gives, and anything less plain is
left to aiohttp; on real sockets against the server as `hub serve` runs it, its writers stalled
by a lock on the events table (as on a stuck disk) so that admission refuses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.api.http import PUBLISHER
from hub.runner import serving
from hub.services.publisher import Publisher
from hub.store.engine import create_engine, plain_url
from hub.web import create_app
from tests.conftest import Tenant, event_body, make_tenant, settings_for
from tests.support.processes import free_port
from tests.support.waiting import eventually

KEEPALIVE = 1.0


def early_count() -> float:
    return REGISTRY.get_sample_value("hub_publish_refused_early_total") or 0.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Conn:
    """One kept-alive connection, written raw: each `send` is one write of the given bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.writer.write(chunk)
            await self.writer.drain()
            if len(chunks) > 1:
                await asyncio.sleep(0.05)  # separate reads on the server's side

    async def answer(self) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        return Answer(int(status_line.split(" ")[1]), headers, body)

    async def closed(self, within: float) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1), within) == b""
        except TimeoutError:
            return False


@dataclass
class Served:
    port: int
    tenant: Tenant
    publisher: Publisher

    async def connect(self) -> Conn:
        return Conn(*await asyncio.open_connection("127.0.0.1", self.port))

    def publish(self, *, extra: str = "", body: bytes | None = None) -> bytes:
        """A publish request's bytes (`extra`: header lines, each ending in CRLF)."""
        body = orjson.dumps(event_body()) if body is None else body
        return (
            "POST /v2/events HTTP/1.1\r\nHost: hub.test\r\n"
            f"Authorization: Bearer {self.tenant.keys['publish']}\r\n"
            f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


@pytest.fixture
async def hub(fresh_db: str) -> AsyncIterator[Served]:
    engine: AsyncEngine = create_engine(fresh_db, pool_size=4)
    settings = settings_for(fresh_db, publish_max_wait=0.2, header_timeout=KEEPALIVE)
    port = free_port()
    app = create_app(settings, engine)
    try:
        async with serving(app, settings, "127.0.0.1", port):
            yield Served(port, await make_tenant(engine), app[PUBLISHER])
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def refusing(hub: Served, fresh_db: str) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Admission refuses (`BEHIND`) inside the block: the events table is locked against
    inserts, and a publish has waited longer than `publish_max_wait`. Yields the stalled
    publishes' tasks, which the lock's release lets through."""
    blocker = await asyncpg.connect(plain_url(fresh_db))
    stalled: list[asyncio.Task[Any]] = []
    try:
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")

        async def one() -> Answer:
            conn = await hub.connect()
            await conn.send(hub.publish())
            return await asyncio.wait_for(conn.answer(), 30)

        while not hub.publisher.waited() and len(stalled) < 10:
            stalled.append(asyncio.create_task(one()))
            await asyncio.sleep(0.1)
        await eventually(lambda: hub.publisher.waited() > 0.2, timeout=10, what="a stalled publish")
        yield stalled
        await transaction.rollback()
    finally:
        await blocker.close()


async def test_a_plain_publish_is_refused_early_with_the_handlers_answer_on_a_kept_alive_connection(
    hub: Served, fresh_db: str
) -> None:
    async with refusing(hub, fresh_db) as stalled:
        early_before = early_count()
        conn = await hub.connect()
        await conn.send(hub.publish())
        early = await conn.answer()
        await conn.send(hub.publish(extra="X-Request-Id: req-7\r\n"))
        echoed = await conn.answer()
        await conn.send(hub.publish(extra="X-Request-Id: bad id\r\n"))
        renamed = await conn.answer()
        assert early_count() - early_before == 3, "all three answered before aiohttp"
        # The same request in two reads (its head, then its body) is aiohttp's to answer.
        split = await hub.connect()
        request = hub.publish()
        await split.send(request[:40], request[40:])
        late = await split.answer()
        assert early_count() - early_before == 3
    assert {answer.status for answer in await asyncio.gather(*stalled)} == {202}

    for answer in (early, echoed, renamed, late):
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"].split(";")[0] == "application/json"
        assert orjson.loads(answer.body)["errors"] == [
            {
                "status": 503,
                "title": "Service Unavailable",
                "detail": "Too many events are waiting to be stored; publish again after "
                "Retry-After",
            }
        ]
    assert early.body == late.body
    same = {"content-type", "retry-after", "content-length", "server"}
    assert set(early.headers) == set(late.headers) == same | {"date", "x-request-id"}
    assert {h: early.headers[h] for h in same} == {h: late.headers[h] for h in same}
    assert echoed.headers["x-request-id"] == "req-7"
    assert renamed.headers["x-request-id"] not in ("bad id", early.headers["x-request-id"])


async def test_requests_other_than_one_whole_plain_publish_are_left_to_aiohttp(
    hub: Served, fresh_db: str
) -> None:
    async with refusing(hub, fresh_db):
        early_before = early_count()
        body = orjson.dumps(event_body())
        chunked = (
            b"POST /v2/events HTTP/1.1\r\nHost: hub.test\r\nAuthorization: Bearer "
            + hub.tenant.keys["publish"].encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        others = [
            (hub.publish(extra="Origin: https://shop.test\r\n"), 1),  # CORS' path
            (hub.publish(extra="Connection: keep-alive\r\n"), 1),
            (hub.publish() + hub.publish(), 2),  # two pipelined in one read: answered in order
            (chunked, 1),
        ]
        answers = []
        for request, count in others:
            conn = await hub.connect()
            await conn.send(request)
            answers += [(await conn.answer()).status for _ in range(count)]
        # After a chunk that did not end where a request did, the connection's later requests
        # go to aiohttp too, however plain.
        await conn.send(hub.publish())
        answers.append((await conn.answer()).status)
        assert early_count() == early_before, "none was answered before aiohttp"
        assert answers == [503] * 6, "aiohttp's path refused them all the same"


async def test_a_connection_whose_publishes_are_refused_early_is_not_closed_as_idle(
    hub: Served, fresh_db: str
) -> None:
    async with refusing(hub, fresh_db):
        early_before = early_count()
        conn = await hub.connect()
        for _ in range(int(3 * KEEPALIVE / 0.25)):  # 3 keep-alive timeouts, a request each 0.25 s
            await conn.send(hub.publish())
            assert (await conn.answer()).status == 503
            await asyncio.sleep(0.25)
        assert early_count() - early_before == 12
        assert not await conn.closed(within=0.1)
    assert await conn.closed(within=3 * KEEPALIVE), "idle, it is closed after the timeout"


async def test_a_plain_publish_is_accepted_when_admission_admits(hub: Served) -> None:
    conn = await hub.connect()
    for _ in range(3):
        await conn.send(hub.publish())
        answer = await conn.answer()
        assert answer.status == 202, answer.body
