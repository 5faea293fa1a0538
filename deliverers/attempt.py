"""The kit every deliverer builds its attempts with: one way to time an attempt, to check its
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
  value that may be shown masked, such as an access key id); secrets shorter than `min_length`
  are left alone, for a transport whose short values are no secret worth garbling a text for.
* `Attempt.failed(...)`: scrubs the detail, logs one warning line (`event`, `error_detail`,
  any extra fields, `duration`) and returns the failed `DeliveryResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel

from deliverers.base import Delivery, DeliveryResult

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


def scrub(
    text: str,
    *secrets: str | None,
    min_length: int = 1,
    shown_as: Callable[[str], str] | None = None,
) -> str:
    """`text` with each secret (of at least `min_length` characters) replaced.

    By `SCRUBBED`, or by `shown_as(secret)` when given. Error texts come partly from servers and
    libraries, which may echo what they were sent: a secret never rides along in a detail.
    """
    for secret in secrets:
        if secret and len(secret) >= min_length:
            text = text.replace(secret, SCRUBBED if shown_as is None else shown_as(secret))
    return text


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
    "log_fields",
    "one_line",
    "reason",
    "scrub",
]
