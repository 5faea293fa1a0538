"""Early refusals: under overload, a publish that admission refuses is answered from its
connection's bytes, before aiohttp makes a request of them.

An API without a cliff answers every request as fast as requests come, the excess with a 503
(`hub.services.publisher`: admission). aiohttp's path costs 44-50 µs of CPU even for an
answer decided at once (the parser's message, the request and its task, the middlewares, the
response's preparation): refusing 9,000 publishes/s that way takes almost half a core beside
the publishes accepted, the loop falls behind, and every request, accepted or not, waits in its
socket. Here a refusal costs 12-16 µs, the socket's read and write included: `hub.runner`'s
connection wrapper hands each chunk a connection receives to `EarlyRefusals.answer`, which
returns the bytes to write back when the chunk is one whole publish to refuse; aiohttp never
sees it.

Only the plainest requests qualify; anything else goes to aiohttp, whose `shed_publishes`
middleware gives the same answer (the same body, status and headers but `Date` and
`X-Request-Id`):

- the chunk is exactly one request: `POST /v2/events HTTP/1.1`, its head complete, then as
  many bytes as its one `Content-Length` says (no `Transfer-Encoding`, `Expect` or `Upgrade`,
  whose bodies or protocols continue past the chunk);
- no `Origin` (CORS' headers are the middleware's) and no `Connection` header;
- aiohttp is between two requests on the connection (none in progress, none queued), and
  every earlier chunk of the connection ended where a request did (`NOT_WHOLE` otherwise: the
  connection's later chunks all go to aiohttp), so the answer cannot overtake another;
- the refusal is `BEHIND`: a stopping process's answers close their connections (`InFlight`),
  which is the middleware's to do.

The answer carries the caller's `X-Request-Id` when it is a valid one, else a new one, like
every answer. aiohttp's keep-alive timer is pushed back as an answer of its own would, so a
connection whose publishes are refused here is not closed as idle.
"""

from __future__ import annotations

import re
import uuid
from typing import Final, Literal

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter

from hub.api.http import PUBLISHER
from hub.api.middleware import REFUSED_ANSWERS, REQUEST_ID, refusal_answer
from hub.services.publisher import BEHIND

EARLY = Counter(
    "hub_publish_refused_early_total",
    "Publishes refused by admission before aiohttp read them (hub.api.shedding)",
)

#: A chunk that does not end where a request does: this connection's chunks go to aiohttp.
NOT_WHOLE: Final = False

_REQUEST_LINE = b"POST /v2/events HTTP/1.1\r\n"
_HEAD_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]{1,12})[ \t]*\r\n")
_FRAMING = re.compile(rb"\r\n(?:transfer-encoding|expect|upgrade):")
_OTHER_PATH = re.compile(rb"\r\n(?:origin|connection):")
_REQUEST_ID = re.compile(rb"\r\nx-request-id:[ \t]*([^\r\n]*?)[ \t]*\r\n", re.IGNORECASE)
_VALID_ID = re.compile(REQUEST_ID.pattern.encode())  # `request_id_of`'s rule, on bytes


class EarlyRefusals:
    """`answer` decides, for one chunk of one connection, as the module docstring says."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        body, headers = refusal_answer(BEHIND)
        lines = ["HTTP/1.1 503 Service Unavailable"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines += [f"Content-Length: {len(body)}", f"Server: {SERVER_SOFTWARE}"]
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._body = body

    def answer(self, data: bytes, handler: RequestHandler) -> bytes | Literal[False] | None:
        """The refusal to write back for `data`; None: hand it to aiohttp (it ends where a
        request does); `NOT_WHOLE`: hand it and every later chunk of the connection to aiohttp."""
        end = data.find(_HEAD_END)
        if end < 0:
            return NOT_WHOLE
        head = data[: end + 2].lower()
        lengths = _LENGTH.findall(head)
        declared = head.count(b"\r\ncontent-length:")
        if declared > 1 or len(lengths) != declared or _FRAMING.search(head):
            return NOT_WHOLE
        if end + 4 + (int(lengths[0]) if lengths else 0) != len(data):
            return NOT_WHOLE
        if not data.startswith(_REQUEST_LINE) or _OTHER_PATH.search(head):
            return None
        # aiohttp's own state (read defensively: should it change, nothing is answered here).
        if (
            getattr(handler, "_request_in_progress", True)
            or getattr(handler, "_messages", True)
            or getattr(handler, "_force_close", True)
            or getattr(handler, "_close", True)
        ):
            return None
        publisher = self._app.get(PUBLISHER)
        if publisher is None or publisher.stopping or publisher.refusal() is None:
            return None
        EARLY.inc()
        REFUSED_ANSWERS.inc()
        handler._next_keepalive_close_time = handler._loop.time() + handler.keepalive_timeout
        return b"".join(
            (
                self._head,
                self._request_id(data[: end + 2]),
                f"Date: {rfc822_formatted_time()}\r\n\r\n".encode(),
                self._body,
            )
        )

    @staticmethod
    def _request_id(head: bytes) -> bytes:
        given = _REQUEST_ID.search(head)
        value = given.group(1) if given else b""
        if not _VALID_ID.fullmatch(value):
            value = uuid.uuid4().hex.encode()
        return b"X-Request-Id: " + value + b"\r\n"
