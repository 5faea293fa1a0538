"""The deliverer port: one tiny interface that every delivery transport implements.

A deliverer is opened once (`open`), asked to `deliver` any number of jobs concurrently, and
closed once (`aclose`). `deliver` never raises for a delivery problem: every failure comes back
as a `DeliveryResult` with `succeeded=False` and a human-readable `error_detail`, so the
dispatcher records one uniform log row per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol
from uuid import UUID

from deliverers.config import AnyConfig

#: The most of a response body kept in a log.
BODY_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class VapidKey:
    """A store's VAPID key pair (RFC 8292), which signs its Web Push deliveries."""

    public_key: str
    """The uncompressed P-256 point, base64url: browsers' `applicationServerKey`."""
    private_key: str = field(repr=False)
    """The private scalar (32 bytes), base64url, in clear."""


@dataclass(frozen=True, slots=True)
class Target:
    """The integration a job is delivered to, as a deliverer needs it."""

    id: UUID
    store_id: UUID
    name: str
    description: str | None
    integration_type: str
    configuration: AnyConfig
    signing_secrets: tuple[str, ...]
    """`whsec_…` secrets to sign with; more than one during a rotation's grace period."""
    vapid: VapidKey | None = None
    """The store's VAPID key pair, for `web_push` targets."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt of one job: an event going to one integration."""

    job_id: UUID
    attempt: int
    event_id: UUID
    triggered_by: str
    payload: dict[str, Any]
    """The event's payload document (`{"data": …, "included": …}`), as published."""
    event_time: datetime
    target: Target
    ordering_value: str | None = None
    """(beyond EP) The job's key value when its integration orders deliveries (its
    `ordering_key`'s value in the payload): one job of a value is delivered at a time."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The uniform outcome of an attempt, whatever the transport."""

    succeeded: bool
    duration: float
    """Seconds the attempt took."""
    status_code: int | None = None
    body: str | None = None
    """The response body, at most `BODY_LIMIT` characters, secrets scrubbed
    (`deliverers.attempt.excerpt`)."""
    error_detail: str | None = None
    retry_after: float | None = None
    """Seconds the endpoint asked us to wait (`Retry-After`), if it did."""
    gone: bool = False
    """The target no longer exists (a push subscription the push service answers 404 or 410
    for): the job fails and the integration is disabled, as for a webhook's `410 Gone`."""


class Deliverer(Protocol):
    """What every transport implements; see the module docstring."""

    integration_type: ClassVar[str]

    async def open(self) -> None:
        """Acquire long-lived resources (connection pools, clients)."""

    async def aclose(self) -> None:
        """Release everything `open` acquired; safe to call more than once."""

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """Attempt one delivery; never raises for a delivery failure."""
