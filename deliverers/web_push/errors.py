"""What a push service's answer means, as an `error_detail` (RFC 8030 §8, RFC 8292 §4).

404 and 410 mean the subscription is gone (expired, or the user unsubscribed): the result says
so (`gone`), and the retry policy disables the integration. 429 asks us to slow down; its
`Retry-After` is honoured. The rest are failures retried like any other.
"""

from __future__ import annotations

from deliverers.webhook.errors import Wording

WORDING = Wording(sent="the push message", answerer="the push service")

#: Statuses meaning the subscription no longer exists.
GONE = frozenset({404, 410})


def answer_detail(status: int, retry_after: float | None) -> str:
    """The `error_detail` of a push service's non-2xx answer."""
    if status in GONE:
        name = "404 Not Found" if status == 404 else "410 Gone"
        return (
            f"The push service answered {name}: the push subscription has expired or was "
            "unsubscribed; the integration is disabled (the browser must subscribe again)"
        )
    if status == 429:
        wait = "" if retry_after is None else f"; retrying after {retry_after:g} s"
        return f"The push service answered 429 Too Many Requests{wait}"
    if status == 413:
        return "The push service answered 413 Payload Too Large"
    if status in (401, 403):
        return (
            f"The push service answered {status}: it refused the VAPID signature (the "
            "subscription was made with another applicationServerKey, or it refuses "
            "HUB_VAPID_SUBJECT)"
        )
    if status == 400:
        return "The push service answered 400 Bad Request: it refused the request"
    return f"The push service answered {status}"


__all__ = ["GONE", "WORDING", "answer_detail"]
