"""What a failed webhook request's `error_detail` says.

An answer outside 2xx gets EP's wording (`NON_2XX_DETAIL`). A request that got no answer gets a
specific sentence naming the cause: a TLS handshake that failed and why, a host not found, a
connection refused, a timeout, or the library's own words clipped to `REASON_LIMIT` characters.
"""

from __future__ import annotations

import errno
import ssl
from dataclasses import dataclass

import aiohttp
from yarl import URL

from deliverers.attempt import reason
from hub.errors import TargetRefused

#: EP's `error_detail` for any answer outside 2xx (3xx included: redirects are not followed).
NON_2XX_DETAIL = "Received a status code outside of 2xx range - treating webhook as a fail"

#: The most characters of a library's reason kept in a webhook's `error_detail`.
REASON_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Wording:
    """How a deliverer's failures name what it sends and who should answer."""

    sent: str = "the webhook"
    """What could not be delivered: "Could not deliver the webhook: …"."""
    answerer: str = "the webhook"
    """Who did not answer in time: "… waiting for the webhook to respond"."""


WEBHOOK = Wording()


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a request got no answer."""

    detail: str
    quotes_library: bool = False
    """Whether `detail` quotes a library's text, which may echo the request (and its secret)."""


def failure_of(
    error: aiohttp.ClientError | OSError, *, url: URL, timeout: float, wording: Wording = WEBHOOK
) -> Failure:
    """The failure of a request to `url` that raised `error` instead of answering."""
    if isinstance(error, aiohttp.ClientSSLError):
        detail = f"TLS handshake with {_hostport(error.host, error.port)} failed: "
        return Failure(detail + _tls_reason(error), quotes_library=True)
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        if isinstance(error.os_error, TargetRefused):
            return Failure(error.os_error.reason)
        return Failure(f"Could not resolve host {error.host}")
    if isinstance(error, aiohttp.ClientConnectorError):
        where = _hostport(error.host, error.port)
        if _is_refused(error.os_error):
            detail = f"Connection refused by {where}"
        else:
            cause = error.strerror or reason(error.os_error, limit=REASON_LIMIT)
            detail = f"Could not deliver {wording.sent}: cannot connect to {where} ({cause})"
        return Failure(detail, quotes_library=True)
    if isinstance(error, TimeoutError):
        # (`asyncio.TimeoutError` on 3.11+.) Before the general case: aiohttp's timeouts are
        # `ClientError`s and `OSError`s both.
        return Failure(
            f"Timed out after {float(timeout)} s waiting for {wording.answerer} to respond"
        )
    if isinstance(error, ssl.SSLError):
        # Before the general case: a TLS failure after the handshake, raised bare.
        where = _hostport(url.host or "", url.port)
        return Failure(
            f"TLS handshake with {where} failed: {_tls_reason(error)}", quotes_library=True
        )
    detail = f"Could not deliver {wording.sent}: {reason(error, limit=REASON_LIMIT)}"
    return Failure(detail, quotes_library=True)


def _is_refused(error: OSError) -> bool:
    # Happy Eyeballs merges the errors of every address tried into one `OSError`, which keeps
    # the errno when all of them agree.
    return isinstance(error, ConnectionRefusedError) or error.errno == errno.ECONNREFUSED


def _tls_reason(error: BaseException) -> str:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        error = error.certificate_error
    elif isinstance(error, aiohttp.ClientConnectorError):
        error = error.os_error
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return reason(error, limit=REASON_LIMIT)


def _hostport(host: str, port: int | None) -> str:
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


__all__ = ["NON_2XX_DETAIL", "REASON_LIMIT", "WEBHOOK", "Failure", "Wording", "failure_of"]
