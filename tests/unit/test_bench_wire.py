"""The benchmark's lean HTTP client (`bench.wire`): what it reads of an answer, against a real
aiohttp server on loopback, and what it refuses to guess at."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.services import free_port
from bench.wire import Connections, WireError, _parse_head


def test_the_head_gives_status_retry_after_length_and_keep_alive() -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 12"
    assert _parse_head(head) == (503, "1", 12, True)
    assert (
        _parse_head(b"HTTP/1.1 202 Accepted\r\nConnection: close\r\ncontent-length: 0")[3] is False
    )
    assert _parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0")[3] is False


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "chunked"),
        (b"HTTP/1.1 200 OK", "without Content-Length"),
        (b"SSH-2.0-OpenSSH", "not an HTTP/1 status line"),
    ],
)
def test_answers_it_cannot_read_are_refused(head: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        _parse_head(head)


SEEN: list[int] = []
"""The connections (their transports' ids) the server answered on, in order."""


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    seen = SEEN
    seen.clear()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(id(request.transport))
        if request.headers.get("X-Close"):
            return web.Response(status=202, body=body, headers={"Connection": "close"})
        return web.Response(status=503, body=body, headers={"Retry-After": "2"})

    app = web.Application()
    app.router.add_post("/v2/events", handle)
    running = TestServer(app, host="127.0.0.1")
    await running.start_server()
    try:
        yield running
    finally:
        await running.close()


async def test_requests_share_kept_alive_connections(server: TestServer) -> None:
    pool = Connections("127.0.0.1", server.port or 0, per_address=1)
    try:
        request = pool.request("POST", "/v2/events", {"X-Test": "1"}, b'{"data": {}}')
        for _ in range(3):
            answer = await pool.send(request, timeout=5)
            assert (answer.status, answer.retry_after, answer.body) == (503, "2", b'{"data": {}}')
        assert len(set(SEEN)) == 1, "one connection for all three"
        closing = pool.request("POST", "/v2/events", {"X-Close": "1"}, b"x" * 100_000)
        answer = await pool.send(closing, timeout=5)
        assert (answer.status, len(answer.body)) == (202, 100_000)
        await pool.send(request, timeout=5)
        assert len(set(SEEN)) == 2, "a closed connection is not reused"
    finally:
        pool.close()


async def test_no_server_is_a_wire_error() -> None:
    pool = Connections("127.0.0.1", free_port(), per_address=1)
    with pytest.raises(WireError):
        await pool.send(pool.request("POST", "/", {}, b""), timeout=5)
