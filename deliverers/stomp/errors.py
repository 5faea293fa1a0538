"""What a failed STOMP attempt says: why no address connected, and what an ERROR frame said.

Each text is specific (a refused connection, a TLS failure and why, a host not found, no answer
in time) and clipped to `REASON_LIMIT` characters where it quotes the broker or a library. The
deliverer scrubs the password from whatever the broker or a library may have echoed.
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Any

from deliverers.attempt import clip, reason


class ConnectFailed(Exception):
    """No address completed the handshake; `detail` says why, address by address."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def describe_error(frame: Any) -> str:
    """An ERROR frame as one line: its `message` header, then its body if that adds anything."""
    message = " ".join(str(frame.headers.get("message") or "").split())
    body = frame.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = " ".join(str(body or "").split())
    if message and text and text != message:
        text = f"{message} ({text})"
    else:
        text = message or text or "no message"
    return clip(text)


def connect_reason(error: OSError | None, timeout: float) -> str:
    """Why connecting to one address failed, in a few words (`timeout`: what it was given)."""
    if error is None:
        return "could not connect"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS handshake failed: certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        why = str(error.reason).replace("_", " ").lower() if error.reason else reason(error)
        return f"TLS handshake failed: {why}"
    if isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:.3g} s"
    if isinstance(error, socket.gaierror):
        return "host not found"
    return reason(error)


__all__ = ["ConnectFailed", "connect_reason", "describe_error"]
