"""What a failed publish's `error_detail` says: a sentence naming the broker (host, port and
vhost, never the URL with its password), the exchange or the user as the case needs, and the
broker's own words where it gave some. Each cause gets its own sentence: a refused login, a
vhost the user may not open, a missing exchange, an unroutable message, a refused message, a
lost connection, a timeout, a refused or unresolvable address, a TLS failure."""

from __future__ import annotations

import errno
import ssl

from aiormq import exceptions as amqp
from pamqp.commands import Basic

from deliverers.amqp.connections import Broker, Route
from deliverers.amqp.transport import UnresolvedHost
from deliverers.attempt import reason
from hub.errors import TargetRefused


def where(broker: Broker) -> str:
    """`host:port (vhost 'v')`, as every detail names a broker."""
    return f"{broker.address} (vhost {broker.vhost!r})"


def connect_failure(error: BaseException, broker: Broker) -> str:
    """Why the connection to `broker` could not be opened."""
    if isinstance(error, TargetRefused):
        return error.reason
    if isinstance(error, UnresolvedHost):
        return f"Could not resolve host {broker.host}"
    if isinstance(error, amqp.ProbableAuthenticationError):
        return (
            f"The AMQP broker at {broker.address} refused the login of user {broker.user!r} "
            "(wrong user name or password)"
        )
    if isinstance(error, amqp.AuthenticationError):
        return (
            f"The AMQP broker at {broker.address} accepts none of the hub's login mechanisms "
            "(PLAIN)"
        )
    if isinstance(error, amqp.ConnectionNotAllowed) or (
        isinstance(error, amqp.InvalidFrameError) and "Connection.Close" in str(error)
    ):
        # RabbitMQ answers Connection.Open on a vhost the user may not open with a close.
        return (
            f"The AMQP broker at {broker.address} refused user {broker.user!r} access to vhost "
            f"{broker.vhost!r} (it does not exist, or the user has no permissions on it)"
        )
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"TLS handshake with {broker.address} failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake with {broker.address} failed: {error.reason or reason(error)}"
    if isinstance(error, ConnectionRefusedError) or (
        isinstance(error, OSError) and error.errno == errno.ECONNREFUSED
    ):
        return f"Connection refused by {broker.address}"
    if isinstance(error, amqp.AMQPConnectionError) and error.args and error.args[0] == 111:
        return f"Connection refused by {broker.address}"
    return f"Could not connect to the AMQP broker at {broker.address}: {_text(error)}"


def publish_failure(
    error: BaseException, broker: Broker, route: Route, routing_key: str, lost: str | None
) -> str:
    """Why a publish on an open connection failed (`lost`: why the connection closed, if it
    did)."""
    exchange = route.exchange
    if isinstance(error, amqp.PublishError):
        frame = error.frame
        code = f"{frame.reply_code} {frame.reply_text}" if isinstance(frame, Basic.Return) else ""
        return (
            f"The AMQP broker returned the message as unroutable: no queue is bound to exchange "
            f"{exchange!r} for routing key {routing_key!r} at {where(broker)} ({code})"
        )
    if isinstance(error, amqp.DeliveryError):
        return (
            f"The AMQP broker at {where(broker)} refused the message on exchange {exchange!r} "
            "(basic.nack: a queue is full or the broker is out of resources)"
        )
    if isinstance(error, amqp.ChannelNotFoundEntity):
        return (
            f"The exchange {exchange!r} does not exist in vhost {broker.vhost!r} on the AMQP "
            f"broker at {broker.address} (declare it, or set declare: true)"
        )
    if isinstance(error, amqp.ChannelAccessRefused):
        return (
            f"The AMQP broker at {where(broker)} refused user {broker.user!r} access to "
            f"exchange {exchange!r}: {_text(error)}"
        )
    if isinstance(error, amqp.ChannelPreconditionFailed):
        return (
            f"The exchange {exchange!r} at {where(broker)} exists with other settings than "
            f"declared (durable, {route.exchange_type}): {_text(error)}"
        )
    if isinstance(error, amqp.ChannelClosed) and lost is None:
        return f"The AMQP broker at {where(broker)} closed the channel: {_text(error)}"
    cause = lost or _text(error)
    return (
        f"The connection to the AMQP broker at {where(broker)} was lost before the broker "
        f"confirmed the message ({cause})"
    )


def _text(error: BaseException) -> str:
    """The broker's or library's words: the first text among the error's arguments."""
    text = next((arg for arg in error.args if isinstance(arg, str) and arg.strip()), None)
    return reason(error) if text is None else reason(Exception(text))


__all__ = ["connect_failure", "publish_failure", "where"]
