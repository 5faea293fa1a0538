"""stomp.py over one socket to one broker address, connected the hub's way.

stomp.py is blocking and reads each connection on a receiver thread of its own; everything here
runs in worker threads or on that receiver thread, never on the event loop. `Transport` connects
to exactly the SSRF guard's vetted addresses of one broker address, within a timeout, over TLS
for `stomp+ssl://` (the certificate checked against the given context's CAs), and keeps why it
could not connect, so that the `error_detail` can say.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import stomp.connect
import stomp.exception
import stomp.protocol
import stomp.transport
import stomp.utils

#: The most bytes one read of a TLS socket takes.
RECV_BYTES = 16384


@dataclass(frozen=True, slots=True)
class Address:
    """One broker address of a configuration, parsed."""

    url: str
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Address:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:  # StompConfig has checked already
            raise ValueError(f"{url!r} is not a stomp://host:port address")
        return cls(url, parts.hostname, parts.port, parts.scheme == "stomp+ssl")


class Transport(stomp.transport.Transport):  # type: ignore[misc]
    """stomp.py's socket transport for exactly one address, keeping why it could not connect.

    stomp.py's own `attempt_connection` reorders its addresses (local ones first), logs why each
    failed and raises a bare `ConnectFailedException`; the hub tries its addresses in the
    configured order and needs each reason for `error_detail`. This one connects once, within
    `timeout`, and keeps the failure in `failure`; a TLS socket is then driven without blocking
    by the receiver thread, exactly as stomp.py does after its own handshake.

    On a TLS socket stomp.py takes the end of the stream for "no data yet" and never notices the
    broker closing; `receive` stops the receiver loop there, so the drop is reported at once.
    """

    def __init__(
        self,
        address: Address,
        *,
        timeout: float,
        virtual_host: str | None,
        ssl_context: ssl.SSLContext,
        targets: tuple[str, ...] = (),
    ) -> None:
        host_and_port = (address.host, address.port)
        super().__init__(
            [host_and_port],
            prefer_localhost=False,
            try_loopback_connect=False,
            reconnect_attempts_max=1,
            timeout=timeout,
            vhost=virtual_host,
        )
        self.failure: OSError | None = None
        self._address = address
        self._connect_timeout = timeout
        self._ssl_context = ssl_context
        # The SSRF guard's vetted addresses of the host: connected to as they are, in order.
        self._targets = targets or (address.host,)
        if address.tls:
            # Tells stomp.py's `disconnect_socket` to end the TLS session properly.
            self.set_ssl(for_hosts=[host_and_port])

    def attempt_connection(self) -> None:
        self.connection_error = False
        address = self._address
        sock: socket.socket | None = None
        try:
            for index, target in enumerate(self._targets):
                try:
                    sock = socket.create_connection((target, address.port), self._connect_timeout)
                    break
                except OSError:
                    if index == len(self._targets) - 1:
                        raise
            assert sock is not None
            if address.tls:
                sock = self._ssl_context.wrap_socket(sock, server_hostname=address.host)
        except OSError as error:
            if sock is not None:
                sock.close()
            self.failure = error
            raise stomp.exception.ConnectFailedException(str(error)) from error
        if address.tls:
            self.send_queue = stomp.utils.PollableQueue()
            self.sel = selectors.DefaultSelector()
            self.sel.register(self.send_queue, selectors.EVENT_READ)
            self.sel.register(sock, selectors.EVENT_READ)
            self.blocking = False
        sock.setblocking(self.blocking)
        self.socket = sock
        self.current_host_and_port = (address.host, address.port)

    def receive(self) -> bytes | None:
        if not self._address.tls:
            data: bytes | None = super().receive()
            return data
        try:
            data = self.socket.recv(RECV_BYTES)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # no whole TLS record yet: stomp.py waits for the socket
        except OSError:
            self.running = False
            raise
        if not data:  # the end of the stream: close_notify or EOF
            self.running = False
        return data


class Connection(stomp.connect.StompConnection12):  # type: ignore[misc]
    """A stomp.py STOMP 1.2 connection over a `Transport`."""

    def __init__(self, transport: Transport, heartbeats: tuple[int, int]) -> None:
        # What `StompConnection12.__init__` does, with our transport instead of a new one.
        stomp.connect.BaseConnection.__init__(self, transport)
        stomp.protocol.Protocol12.__init__(self, transport, heartbeats)


def drop(conn: Connection) -> None:
    """Close `conn`'s socket, whatever state it is in."""
    with contextlib.suppress(Exception):
        conn.transport.disconnect_socket()


__all__ = ["Address", "Connection", "Transport", "drop"]
