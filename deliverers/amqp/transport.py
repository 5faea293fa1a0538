"""The socket to an AMQP broker, opened to the SSRF guard's vetted addresses only.

aiormq opens its socket through a `TransportFactory`; `GuardedTransport` is the one every
connection of the deliverer uses. It resolves the broker's host name through `hub.ssrf`'s
`GuardedResolver` (refused answers dropped; none left is a `TargetRefused`), judges a literal
address itself, and connects to the vetted addresses in order, so that no second lookup can be
rebound to an internal address (DNS rebinding). Over TLS (`amqps://`) the certificate is checked
against the broker's host name, not the address connected to. Every reconnect resolves afresh.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from aiohttp.abc import AbstractResolver
from aiormq.connection import SSLContextProvider, TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

from hub.errors import TargetRefused
from hub.ssrf import SsrfGuard, parse_ip


class UnresolvedHost(AMQPConnectionError):
    """The broker's host name has no address."""

    def __init__(self, host: str) -> None:
        super().__init__(f"Could not resolve host {host}")
        self.host = host


class GuardedTransport(TransportFactory):
    """aiormq's TCP (or TLS) transport, to vetted addresses only; see the module docstring."""

    def __init__(self, guard: SsrfGuard, resolver: AbstractResolver | None = None) -> None:
        self._guard = guard
        self._resolver = guard.resolver(resolver)

    async def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of `host` that may be connected to (`TargetRefused` if none)."""
        literal = parse_ip(host)
        if literal is not None:
            self._guard.check(host, literal)
            return [str(literal)]
        answers = await self._resolver.resolve(host, port, family=socket.AF_UNSPEC)
        return list(dict.fromkeys(answer["host"] for answer in answers))

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider: SSLContextProvider | None = kwargs.pop("ssl_context_provider", None)
        host, port = url.host or "", url.port or 5672
        try:
            targets = await self.addresses(host, port)
        except TargetRefused:
            raise  # the deliverer words it
        except OSError as error:
            raise UnresolvedHost(host) from error
        tls = url.scheme == "amqps" and provider is not None
        context = await provider.get_context() if tls and provider is not None else None
        last: OSError | None = None
        for target in targets:
            try:
                return await asyncio.open_connection(
                    host=target,
                    port=port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                    **kwargs,
                )
            except ssl.SSLError:
                raise  # the handshake failed: another address would not change that
            except OSError as error:
                last = error
        assert last is not None
        raise AMQPConnectionError(*last.args) from last


__all__ = ["GuardedTransport", "UnresolvedHost"]
