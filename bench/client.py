"""The hub's API as the benchmark uses it: create webhook integrations, publish events.

Every event carries a benchmark id `<group>:<n>` as its payload's `data.id`; the sink files the
webhook under it (see `bench.sink`). Payloads look like a real order event, about 0.6 KiB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

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

    @property
    def accepted(self) -> bool:
        return self.status == 202


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

    async def __aenter__(self) -> HubClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=300),
        )
        return self

    async def __aexit__(self, *_exc: object) -> None:
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
        body = orjson.dumps({"data": data})
        sent_at = time.monotonic()
        try:
            async with self.session.post(
                f"{self.base_url}/v2/events", data=body, headers=self._publish
            ) as response:
                answer = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except aiohttp.ClientError as exc:
            if check:
                raise ApiError(f"publish: {type(exc).__name__}: {exc}") from exc
            return Sent(sent_at, time.monotonic() - sent_at, len(events), 0)
        seconds = time.monotonic() - sent_at
        if check and status != 202:
            raise ApiError(f"publish: {status} {answer.decode(errors='replace')[:500]}")
        return Sent(sent_at, seconds, len(events), status, retry_after)

    async def get(self, path: str) -> float:
        """GET `path` with the manage key; the seconds it took (raises unless 200)."""
        started = time.monotonic()
        async with self.session.get(f"{self.base_url}{path}", headers=self._manage) as response:
            await response.read()
            if response.status != 200:
                raise ApiError(f"GET {path}: {response.status} {await response.text()}")
        return time.monotonic() - started
