"""Shared pieces of the security tests: deliveries built by hand, recording sinks on chosen
loopback addresses, and a resolver that answers what a test tells it to."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from deliverers.base import Delivery, Target
from deliverers.config import AnyConfig, WebhookConfig

PAYLOAD: dict[str, Any] = {"data": {"type": "order", "id": "o-1", "status": "paid"}}


def delivery(configuration: AnyConfig, *, signing_secrets: tuple[str, ...] = ()) -> Delivery:
    """One attempt of a fresh job to an integration configured with `configuration`."""
    integration_type = {
        "WebhookConfig": "webhook",
        "SqsConfig": "aws_sqs",
        "StompConfig": "stomp",
    }[type(configuration).__name__]
    return Delivery(
        job_id=uuid4(),
        attempt=1,
        event_id=uuid4(),
        triggered_by="order.paid",
        payload=PAYLOAD,
        event_time=datetime.now(UTC),
        target=Target(
            id=uuid4(),
            store_id=uuid4(),
            name="security test",
            description=None,
            integration_type=integration_type,
            configuration=configuration,
            signing_secrets=signing_secrets,
        ),
    )


def webhook(url: str, secret_key: str | None = None) -> Delivery:
    return delivery(WebhookConfig(url=url, secret_key=secret_key))


@dataclass
class Sink:
    """A webhook endpoint on one loopback address that counts what reaches it."""

    host: str
    port: int = 0
    hits: list[dict[str, str]] = field(default_factory=list)

    async def _hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.hits.append(dict(request.headers))
        return web.Response(text="ok", headers={"Connection": "close"})


@contextlib.asynccontextmanager
async def serving(sink: Sink) -> AsyncIterator[Sink]:
    """Serve `sink` on its host (and port: 0 picks a free one) until the block ends."""
    app = web.Application()
    app.router.add_post("/hook", sink._hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, sink.host, sink.port, reuse_address=False)
    await site.start()
    sink.port = runner.addresses[0][1]
    try:
        yield sink
    finally:
        await runner.cleanup()


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next entry of `answers` (the last one repeats): a DNS
    server that changes its mind, as in DNS rebinding."""

    def __init__(self, answers: Sequence[Sequence[str]]) -> None:
        self.answers = [list(a) for a in answers]
        self.calls: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls.append(host)
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in answer
        ]

    async def close(self) -> None:
        return None
