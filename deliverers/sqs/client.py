"""The SQS clients: one aiobotocore client per credential set and endpoint, kept until closed.

**Where.** The endpoint is the queue URL's scheme and host (`https://sqs.eu-west-1.amazonaws.com`,
or `http://127.0.0.1:4566` for moto or ElasticMQ), so one code path serves AWS and compatible
servers. One aiobotocore client per (access key, secret, region, endpoint) is created on first
use and kept until `aclose`, with connect and read timeouts of `timeout` seconds each and at most
`max_attempts` tries per request (default 2: one quick retry by botocore, for a dropped connection
or a throttle; the hub's own retries are the durable ones).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from aiohttp.abc import AbstractResolver


@dataclass(frozen=True, slots=True)
class ClientKey:
    """What one client is for."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str
    endpoint: str


class Clients:
    """The clients of one deliverer, created on first use of each `ClientKey`.

    `resolver` resolves every endpoint's host name (the SSRF guard's); `session` may be given to
    share an aiobotocore session (its event hooks apply to every client created here).
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_attempts: int,
        max_pool_connections: int,
        resolver: AbstractResolver,
        session: AioSession | None = None,
    ) -> None:
        self._config = AioConfig(
            connect_timeout=timeout,
            read_timeout=timeout,
            # botocore's `max_attempts` counts retries only; `total_max_attempts` counts tries.
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            user_agent_extra="hub-sqs",
            connector_args={"resolver": resolver},
        )
        self._given_session = session
        self._session: AioSession | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._clients: dict[ClientKey, Any] = {}
        self._creating: dict[ClientKey, asyncio.Future[Any]] = {}

    def open(self) -> None:
        """Prepare the session; clients are created on first use of each credential set."""
        if self._stack is not None:
            return
        self._session = self._given_session or get_session()
        self._stack = contextlib.AsyncExitStack()

    async def aclose(self) -> None:
        """Give up creations under way and close every client; safe to call more than once."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        for creating in self._creating.values():
            creating.cancel()
        self._creating.clear()
        self._clients.clear()
        await stack.aclose()

    async def get(self, key: ClientKey) -> Any:
        """The client of `key`, created now if there is none yet."""
        client = self._clients.get(key)
        if client is not None:
            return client
        creating = self._creating.get(key)
        if creating is None:
            # One creation per key, shared by every caller: all of them resume together, in
            # the same loop turn, and so still meet in one batch.
            creating = asyncio.ensure_future(self._create(key))
            self._creating[key] = creating
        return await asyncio.shield(creating)

    async def _create(self, key: ClientKey) -> Any:
        try:
            assert self._session is not None
            assert self._stack is not None
            client = await self._stack.enter_async_context(
                self._session.create_client(
                    "sqs",
                    region_name=key.region,
                    endpoint_url=key.endpoint,
                    aws_access_key_id=key.access_key_id,
                    aws_secret_access_key=key.secret_access_key,
                    config=self._config,
                )
            )
            self._clients[key] = client
            return client
        finally:
            self._creating.pop(key, None)


__all__ = ["ClientKey", "Clients"]
