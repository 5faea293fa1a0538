"""The hub's API as the benchmark uses it: create webhook integrations, publish events.

Every event carries a benchmark id `<group>:<n>` as its payload's `data.id`; the sink files the
webhook under it (see `bench.sink`). Payloads look like a real order event, about 0.6 KiB.
"""

from __future__ import annotations

import errno as os_errno
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from bench.wire import Connections, WireError

EVENT_KEY = "order.created"
FANOUT_KEY = "benchfanout.created"
ORDERED_KEY = "benchordered.created"
#: Where an ordered scenario's events carry their resource (the integration's `ordering_key`).
RESOURCE_PATH = "data.resource_id"


class ApiError(RuntimeError):
    """The API answered something other than what the benchmark expects."""


def payload(event_id: str, resource: str | None = None) -> dict[str, Any]:
    """An EP-like order payload, tagged with the benchmark's `event_id` (and, for the ordered
    scenarios, the `resource` it concerns, at `RESOURCE_PATH`)."""
    document = _payload(event_id)
    if resource is not None:
        document["data"]["resource_id"] = resource
    return document


def _payload(event_id: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "order",
            "id": event_id,
            "status": "complete",
            "payment": "paid",
            "shipping": "unfulfilled",
            "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
            "shipping_address": {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "line_1": "12 St James's Square",
                "city": "London",
                "postcode": "SW1Y 4JH",
                "country": "GB",
            },
            "meta": {
                "display_price": {
                    "with_tax": {"amount": 10500, "currency": "USD", "formatted": "$105.00"},
                    "without_tax": {"amount": 8750, "currency": "USD", "formatted": "$87.50"},
                },
                "timestamps": {
                    "created_at": "2026-01-01T10:00:00.000Z",
                    "updated_at": "2026-01-01T10:00:00.000Z",
                },
            },
        }
    }


def event(event_id: str, key: str = EVENT_KEY, resource: str | None = None) -> dict[str, Any]:
    return {"type": "event", "triggered_by": key, "payload": payload(event_id, resource)}


@dataclass(frozen=True, slots=True)
class Sent:
    """One publish request: when it was sent and how long the answer took (monotonic s)."""

    sent_at: float
    seconds: float
    events: int
    status: int
    """The HTTP status; 0 when no answer came (a connection error)."""
    retry_after: str | None = None
    """The answer's `Retry-After` header, if it had one."""
    error: str | None = None
    """With no answer: the client's error (its exception's class name)."""

    @property
    def accepted(self) -> bool:
        return self.status == 202


#: Publishing goes through `bench.wire` (a lean client: the driver shares the machine with the
#: hub); everything else through aiohttp.
#: Connections the driver keeps to the API at most: under the hub's per-client cap
#: (`HUB_MAX_CONNECTIONS_PER_CLIENT`, 256), which closes a client's connections beyond it on
#: arrival. An open-loop scenario's requests wait for a free one, and that wait counts in their
#: latency (it is measured from when each request was due).
CONNECTIONS = 200
#: The loopback addresses the driver's connections come from (each a client of its own).
CLIENT_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(1, 9))
#: Seconds a request may take before it counts as unanswered.
TIMEOUT = 300.0


class HubClient:
    """An aiohttp session against the API with a `manage` and a `publish` key."""

    def __init__(self, base_url: str, *, manage_key: str, publish_key: str) -> None:
        self.base_url = base_url
        self._manage = {"Authorization": f"Bearer {manage_key}"}
        self._publish = {
            "Authorization": f"Bearer {publish_key}",
            "Content-Type": "application/json",
        }
        self._session: aiohttp.ClientSession | None = None
        where = urlsplit(base_url)
        host = where.hostname or "127.0.0.1"
        self._wire = Connections(
            host,
            where.port or 80,
            per_address=CONNECTIONS,
            # Several clients, as far as the hub's per-client cap sees: under overload, the
            # hub is to see the load, not a queue in this driver.
            addresses=CLIENT_ADDRESSES if host == "127.0.0.1" else ("",),
        )

    async def __aenter__(self) -> HubClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS),
            timeout=aiohttp.ClientTimeout(total=300),
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._wire.close()
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with HubClient(...)`"
        return self._session

    async def create_webhook(
        self,
        url: str,
        *,
        key: str = EVENT_KEY,
        name: str = "bench",
        ordering_key: str | None = None,
    ) -> str:
        body = {
            "data": {
                "type": "integration",
                "name": name,
                "enabled": True,
                "integration_type": "webhook",
                "observes": [key],
                "configuration": {"url": url, "secret_key": "bench-secret-value"},
                "ordering_key": ordering_key,
            }
        }
        async with self.session.post(
            f"{self.base_url}/v2/integrations", json=body, headers=self._manage
        ) as response:
            if response.status != 201:
                raise ApiError(f"create integration: {response.status} {await response.text()}")
            return str((await response.json())["data"]["id"])

    async def publish(
        self, events: list[dict[str, Any]], *, single: bool = False, check: bool = True
    ) -> Sent:
        """POST one event (`single`: as `data: {...}`) or a batch. Unless 202, raises `ApiError`
        (`check`) or returns the answer's status (`check=False`)."""
        data: Any = events[0] if single else events
        request = self._wire.request(
            "POST", "/v2/events", self._publish, orjson.dumps({"data": data})
        )
        sent_at = time.monotonic()
        try:
            answer = await self._wire.send(request, timeout=TIMEOUT)
        except (WireError, TimeoutError) as exc:
            if check:
                raise ApiError(f"publish: {type(exc).__name__}: {exc}") from exc
            return Sent(sent_at, time.monotonic() - sent_at, len(events), 0, error=_error(exc))
        seconds = time.monotonic() - sent_at
        if check and answer.status != 202:
            raise ApiError(f"publish: {answer.status} {answer.body.decode(errors='replace')[:500]}")
        return Sent(sent_at, seconds, len(events), answer.status, answer.retry_after)

    async def open_connections(self) -> None:
        """Open every connection the publishes may use (`CONNECTIONS` per client address)."""
        await self._wire.open_all()

    async def get(self, path: str) -> float:
        """GET `path` with the manage key; the seconds it took (raises unless 200)."""
        started = time.monotonic()
        async with self.session.get(f"{self.base_url}{path}", headers=self._manage) as response:
            await response.read()
            if response.status != 200:
                raise ApiError(f"GET {path}: {response.status} {await response.text()}")
        return time.monotonic() - started


def _error(exc: BaseException) -> str:
    """`ClientOSError(ECONNRESET)`: what a request that got no answer ran into."""
    name = type(exc).__name__
    if isinstance(exc, WireError):
        return f"{name}({str(exc).partition(':')[0]})"
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno in os_errno.errorcode:
        return f"{name}({os_errno.errorcode[errno]})"
    return name
