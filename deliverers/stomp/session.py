"""One STOMP connection's SENDs awaiting the broker's answer, and the ERRORs pinned on them.

stomp.py calls a `Session`'s `on_*` methods on its receiver thread; they hand RECEIPT, ERROR and
disconnect events back to the loop with `loop.call_soon_threadsafe`, where they settle asyncio
futures.

**Which SEND an ERROR is about.** An ERROR naming a receipt fails that SEND. RabbitMQ's name
none (and it keeps the connection open after, say, an unknown destination), while it sends a
SEND's RECEIPT only once the message is confirmed, so an ERROR may overtake the receipts of
SENDs before it. An ERROR is therefore pinned on the one SEND still unconfirmed among those that
were awaiting an answer when it came: at once if there was one, else once the others' receipts
have cleared them (or on whichever of them times out first).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import stomp
import stomp.exception
import structlog

from deliverers.stomp.errors import describe_error
from deliverers.stomp.message import CONTENT_TYPE
from deliverers.stomp.transport import Address, Connection, drop

logger = structlog.get_logger(__name__)

CLOSE_GRACE = 2.0
"""Seconds a closing connection waits for the broker's RECEIPT of DISCONNECT."""


@dataclass(eq=False, slots=True)
class Suspicion:
    """An ERROR frame naming no receipt, and the SENDs it may be about."""

    text: str
    receipts: set[str]

    @property
    def detail(self) -> str:
        return f"The STOMP broker answered with an ERROR frame: {self.text}"


class Session(stomp.ConnectionListener):  # type: ignore[misc]
    """One connection to one broker address and the SENDs awaiting its answer.

    stomp.py calls the `on_*` methods on its receiver thread. Until CONNECTED they only record
    the handshake's outcome (`handshake`, `login_error`); after it they post each event to the
    loop, where `pending` (receipt id → future) and `suspicions` are only ever touched. A future's
    result is None when the RECEIPT came, else the text of why the message is not confirmed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, address: Address) -> None:
        self.loop = loop
        self.address = address
        self.conn: Connection | None = None
        self.handshake = threading.Event()
        self.connected = False
        self.login_error: str | None = None
        self.dropped = threading.Event()
        """Set once, when stomp.py reports the connection closed."""
        self.broken = False
        """A SEND could not be written: the connection is not to be used again."""
        self.closing = False
        """The hub is closing it: its end is no news."""
        self.pending: dict[str, asyncio.Future[str | None]] = {}
        self.suspicions: list[Suspicion] = []

    # --- the receiver thread ---------------------------------------------------------------

    def on_connected(self, frame: Any) -> None:
        self.connected = True
        self.handshake.set()

    def on_error(self, frame: Any) -> None:
        text = describe_error(frame)
        if not self.connected:
            self.login_error = text
            self.handshake.set()
            return
        self._post(self._error, frame.headers.get("receipt-id"), text)

    def on_receipt(self, frame: Any) -> None:
        self._post(self._receipt, frame.headers.get("receipt-id"))

    def on_disconnected(self) -> None:
        if self.dropped.is_set():  # stomp.py may report it twice
            return
        self.dropped.set()
        self.handshake.set()
        if self.connected:
            self._post(self._lost)

    def _post(self, callback: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self.loop.call_soon_threadsafe(callback, *args)

    # --- the loop ------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        if self.conn is None or self.broken or self.dropped.is_set():
            return False
        try:
            return bool(self.conn.is_connected())
        except Exception:  # the receiver thread is tearing the socket down right now
            return False

    def expect(self, receipt: str) -> asyncio.Future[str | None]:
        future: asyncio.Future[str | None] = self.loop.create_future()
        self.pending[receipt] = future
        return future

    def give_up(self, receipt: str) -> str | None:
        """Stop waiting for a SEND that left; an ERROR it is suspected of is pinned on it."""
        if self.pending.pop(receipt, None) is None:
            return None
        blamed: str | None = None
        for suspicion in self.suspicions:
            if receipt in suspicion.receipts:
                self.suspicions.remove(suspicion)
                blamed = suspicion.detail
                break
        self._pin()
        return blamed

    def withdraw(self, receipt: str) -> None:
        """Stop waiting for a SEND that never left: no ERROR can be about it."""
        self.pending.pop(receipt, None)
        self._pin()

    def _settle(self, receipt: str, outcome: str | None) -> None:
        future = self.pending.pop(receipt, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def _receipt(self, receipt: str | None) -> None:
        if receipt is not None:
            self._settle(receipt, None)
        self._pin()

    def _error(self, receipt: str | None, text: str) -> None:
        suspicion = Suspicion(text, set(self.pending) if receipt is None else {receipt})
        self.suspicions.append(suspicion)
        self._pin()

    def _pin(self) -> None:
        """Pin each ERROR on its SEND once only one is left (see the module docstring)."""
        progress = True
        while progress:
            progress = False
            for suspicion in list(self.suspicions):
                suspicion.receipts.intersection_update(self.pending)
                if len(suspicion.receipts) > 1:
                    continue
                self.suspicions.remove(suspicion)
                if not suspicion.receipts:  # about no SEND still awaiting an answer
                    logger.warning(
                        "stomp_broker_error", address=self.address.url, error=suspicion.text
                    )
                    continue
                self._settle(suspicion.receipts.pop(), suspicion.detail)
                progress = True

    def _lost(self) -> None:
        if not self.closing:
            logger.warning("stomp_connection_lost", address=self.address.url)
        lost = (
            f"The connection to the STOMP broker at {self.address.url} closed before the "
            "broker confirmed the message"
        )
        # Which of several suspects an ERROR was about is now past knowing: each is told of it.
        errors = {r: s.text for s in self.suspicions for r in s.receipts}
        self.suspicions.clear()
        for receipt in list(self.pending):
            error = errors.get(receipt)
            self._settle(
                receipt, lost if error is None else f"{lost}, after an ERROR frame: {error}"
            )


def send(
    session: Session, destination: str, body: bytes, headers: dict[str, str], receipt: str
) -> None:
    """SEND one frame on `session`'s connection (in a worker thread), asking for `receipt`."""
    if session.conn is None:
        raise stomp.exception.NotConnectedException()
    session.conn.send(
        destination, body, content_type=CONTENT_TYPE, headers={**headers, "receipt": receipt}
    )


def close(session: Session) -> None:
    """DISCONNECT, wait a little for the broker's RECEIPT, then make sure the socket is gone."""
    conn = session.conn
    if conn is None:
        return
    if not session.dropped.is_set():
        with contextlib.suppress(stomp.exception.StompException, OSError):
            conn.disconnect()  # the receiver thread closes the socket on the RECEIPT
        session.dropped.wait(CLOSE_GRACE)
    drop(conn)


__all__ = ["Session", "Suspicion", "close", "send"]
