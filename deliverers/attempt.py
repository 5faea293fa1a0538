r"""The kit every deliverer builds its attempts with: one way to time an attempt, to check its
configuration, to word why it failed (clipped, secrets scrubbed), and to turn that into a
`DeliveryResult`.

A deliverer's `deliver` uses it like this (the AMQP one, say; every deliverer does the same):

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        attempt = Attempt(delivery)  # the clock starts
        log = logger.bind(**log_fields(delivery))
        try:
            config = attempt.configuration(AmqpConfig, "Could not deliver to AMQP", "amqp")
        except WrongConfiguration as wrong:
            return attempt.failed(log, "amqp_failed", wrong.detail)
        try:
            ...
        except SomeLibraryError as error:
            # The library's text may echo a credential: name it in `secrets`.
            detail = f"Could not publish to {where}: {reason(error)}"
            return attempt.failed(log, "amqp_failed", detail, secrets=(config.password,))
        duration = attempt.elapsed()
        log.info("amqp_delivered", duration=duration)
        return DeliveryResult(succeeded=True, duration=duration)

What each piece promises:

* `reason(error)`: an exception as text, stripped, its type's name when it has no text;
  `one_line(text)`: a server's or library's text with every run of whitespace made one space.
  Both keep at most `limit` characters (`REASON_LIMIT` unless the deliverer says otherwise),
  a final `…` marking the cut (`clip`).
* `scrub(text, *secrets)`: each secret replaced by `****` (or by `shown_as(secret)`, for a
  value that may be shown masked, such as an access key id) in every spelling an endpoint may
  echo it in: as sent, JSON-escaped in any mix (`\"`, `\/`, `\u00e9` in either case, surrogate
  pairs), or percent-encoded (`%C3%A9`, `+` for a space). Secrets shorter than `min_length` are
  left alone, for a transport whose short values are no secret worth garbling a text for.
* `excerpt(text, *secrets, complete=...)`: what a log keeps of an answer's body: scrubbed
  first, then cut to `BODY_LIMIT` characters, so that an echo straddling the cut is scrubbed
  whole. When `text` is itself only the beginning of the answer (`complete=False`: the reader
  stopped at its byte limit), its last characters could begin an echo whose rest was not read;
  they are dropped (as many as the longest spelling of a secret, less one).
* `Attempt.failed(...)`: scrubs the detail, logs one warning line (`event`, `error_detail`,
  any extra fields, `duration`) and returns the failed `DeliveryResult`.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from deliverers.base import BODY_LIMIT, Delivery, DeliveryResult

#: The most characters of a failure's reason kept in an `error_detail`, unless a deliverer says.
REASON_LIMIT = 300
#: What a scrubbed secret is replaced by.
SCRUBBED = "****"

C = TypeVar("C", bound=BaseModel)


def clip(text: str, limit: int = REASON_LIMIT) -> str:
    """At most `limit` characters of `text`, a final `…` marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reason(error: BaseException, *, limit: int = REASON_LIMIT) -> str:
    """Why `error` happened, as its text says (or its type's name), clipped to `limit`."""
    return clip(str(error).strip() or type(error).__name__, limit)


def one_line(text: str, *, limit: int = REASON_LIMIT) -> str:
    """`text` on one line (each run of whitespace one space), clipped to `limit`."""
    return clip(" ".join(text.split()), limit)


#: JSON's two-character escapes (`\/` is optional in JSON, and PHP's default).
_JSON_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _spellings(char: str) -> list[str]:
    """Regular expressions for each way `char` may be written back by an endpoint, escapes
    first (so that a match takes an escape whole rather than its first character)."""
    found = []
    if char in _JSON_ESCAPES:
        found.append(re.escape(_JSON_ESCAPES[char]))
    point = ord(char)
    if point < 0x10000:
        found.append(f"\\\\u(?i:{point:04x})")
    else:  # a UTF-16 surrogate pair
        high, low = 0xD800 + ((point - 0x10000) >> 10), 0xDC00 + ((point - 0x10000) & 0x3FF)
        found.append(f"\\\\u(?i:{high:04x})\\\\u(?i:{low:04x})")
    found.append("".join(f"%(?i:{byte:02x})" for byte in char.encode()))
    if char == " ":
        found.append(re.escape("+"))
    found.append(re.escape(char))
    return found


def _longest_spelling(char: str) -> int:
    json_escape = 6 if ord(char) < 0x10000 else 12
    return max(json_escape, 3 * len(char.encode()))


@functools.lru_cache(maxsize=256)
def _pattern(secret: str) -> tuple[re.Pattern[str], int]:
    """A pattern matching `secret` in any mix of its spellings, and the longest one's length."""
    pattern = "".join(f"(?:{'|'.join(_spellings(char))})" for char in secret)
    return re.compile(pattern), sum(_longest_spelling(char) for char in secret)


def scrub(
    text: str,
    *secrets: str | None,
    min_length: int = 1,
    shown_as: Callable[[str], str] | None = None,
) -> str:
    """`text` with each secret (of at least `min_length` characters), in any spelling, replaced.

    By `SCRUBBED`, or by `shown_as(secret)` when given. Error texts and answers come partly from
    servers and libraries, which may echo what they were sent, raw, JSON-escaped or
    percent-encoded: a secret never rides along in a detail or a logged body.
    """
    kept = sorted({s for s in secrets if s and len(s) >= min_length}, key=len, reverse=True)
    for secret in kept:  # the longest first: a secret inside another goes with it
        replacement = SCRUBBED if shown_as is None else shown_as(secret)
        # Escaped for `sub`, which reads backslashes in a replacement as group references.
        text = _pattern(secret)[0].sub(replacement.replace("\\", "\\\\"), text)
    return text


def excerpt(
    text: str,
    *secrets: str | None,
    complete: bool = True,
    limit: int = BODY_LIMIT,
) -> str:
    """At most `limit` characters of an answer's body, every secret scrubbed before the cut.

    `complete=False` says `text` is only the beginning of the answer: its tail could begin an
    echo of a secret whose rest was never read, so it is dropped (as many characters as the
    longest spelling of a secret, less one) before the cut.
    """
    kept = [s for s in secrets if s]
    text = scrub(text, *kept)
    if not complete and kept:
        margin = max(_pattern(secret)[1] for secret in kept) - 1
        text = text[: max(len(text) - margin, 0)]
    return text[:limit]


def log_fields(delivery: Delivery) -> dict[str, Any]:
    """The ids every log line about an attempt carries."""
    return {
        "job_id": str(delivery.job_id),
        "integration_id": str(delivery.target.id),
        "attempt": delivery.attempt,
        "triggered_by": delivery.triggered_by,
    }


class WrongConfiguration(Exception):
    """The target's configuration is another type's; `detail` is the attempt's `error_detail`."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Attempt:
    """One attempt of one delivery, timed from its creation; see the module docstring."""

    __slots__ = ("delivery", "started")

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the attempt started."""
        return time.perf_counter() - self.started

    def configuration(self, model: type[C], action: str, expected: str) -> C:
        """The target's configuration if it is a `model`, else `WrongConfiguration`.

        Its detail reads "{action}: the integration is configured as 'x', not as {expected}".
        """
        target = self.delivery.target
        config = target.configuration
        if isinstance(config, model):
            return config
        raise WrongConfiguration(
            f"{action}: the integration is configured as {target.integration_type!r}, "
            f"not as {expected}"
        )

    def failed(
        self,
        log: Any,
        event: str,
        detail: str,
        *,
        secrets: Iterable[str | None] = (),
        **fields: Any,
    ) -> DeliveryResult:
        """Log `event` and return the failed result of `detail`, with `secrets` scrubbed.

        `fields` go into the log line between `error_detail` and `duration`; a `status_code`
        among them (an error answer's status) is the result's too.
        """
        detail = scrub(detail, *secrets)
        duration = self.elapsed()
        log.warning(event, error_detail=detail, **fields, duration=duration)
        return DeliveryResult(
            succeeded=False,
            duration=duration,
            status_code=fields.get("status_code"),
            error_detail=detail,
        )


__all__ = [
    "REASON_LIMIT",
    "SCRUBBED",
    "Attempt",
    "WrongConfiguration",
    "clip",
    "excerpt",
    "log_fields",
    "one_line",
    "reason",
    "scrub",
]
