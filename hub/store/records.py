"""Frozen, typed records that the store hands to the layers above it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID


@dataclass(frozen=True, slots=True)
class StoreRecord:
    id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: UUID
    store_id: UUID
    store_name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IntegrationRecord:
    id: UUID
    store_id: UUID
    name: str
    description: str | None
    enabled: bool
    integration_type: str
    observes: tuple[str, ...]
    configuration: dict[str, Any]
    signing_secret: str
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    conditions: dict[str, Any] | None = None
    """(beyond EP) the payload filter's canonical JSON (`hub.conditions`); None: none."""
    max_in_flight: int | None = None
    """(beyond EP) attempts to it in flight at once across the workers; None: no own limit."""
    rate_limit: float | None = None
    """(beyond EP) attempts per second, per worker; None: unlimited."""
    failing_since: datetime | None = None
    """Start of the current unbroken stretch of failed attempts (the circuit breaker's clock)."""
    ordering_key: str | None = None
    """(beyond EP) the payload path whose value orders its jobs (`hub.ordering`); None: none."""


@dataclass(frozen=True, slots=True)
class SwitchedOff:
    """An integration that recording attempts switched off: it was enabled until then."""

    id: UUID
    store_id: UUID
    name: str
    integration_type: str
    reason: str
    """Its `disabled_reason`."""
    by_breaker: bool
    """The circuit breaker tripped (else an answer said its target is gone: a 410)."""
    at: datetime
    """When (its `updated_at`: the recording transaction's time)."""


@dataclass(frozen=True, slots=True)
class FailedJobRecord:
    """A job that has ended `failed`, with what its integration is called."""

    id: UUID
    store_id: UUID
    event_id: UUID
    triggered_by: str
    attempts: int
    integration_id: UUID
    integration_name: str
    integration_type: str
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: UUID
    store_id: UUID
    client_id: str | None
    triggered_by: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: UUID
    store_id: UUID
    event_id: UUID
    integration_id: UUID
    triggered_by: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    retry_of: UUID | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    ordering_value: str | None = None
    """Its key value, when its integration orders deliveries; None: unordered."""
    blocked_by: UUID | None = None
    """While it waits for an earlier job of its key (status pending or held): that job."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    id: UUID
    store_id: UUID
    integration_id: UUID
    job_id: UUID
    attempt: int
    succeeded: bool
    processing_time: float
    status_code: int | None
    body: str | None
    error_detail: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LastErrorRecord:
    """The newest failed attempt of an integration."""

    at: datetime
    detail: str | None
    status_code: int | None


@dataclass(frozen=True, slots=True)
class IntegrationStatusRecord:
    """How an integration is doing: its jobs by status and the story of its attempts."""

    integration: IntegrationRecord
    jobs: dict[str, int]
    """Job count by status; statuses without jobs are absent."""
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: LastErrorRecord | None
    recent_attempts: int
    recent_successes: int


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A replay and its progress, counted from the jobs it created."""

    id: UUID
    store_id: UUID
    integration_id: UUID
    since: datetime
    until: datetime
    statuses: tuple[str, ...]
    total: int
    created_at: datetime
    jobs: dict[str, int]
    """Its jobs by current status; statuses without jobs are absent."""


@dataclass(frozen=True, slots=True)
class VapidKeyRecord:
    """A store's VAPID key pair, its private half decrypted."""

    store_id: UUID
    public_key: str
    private_key: str = field(repr=False)
    created_at: datetime


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the total it was cut from."""

    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome of publishing one event: the event, its job count, whether it is new."""

    event: EventRecord
    jobs_total: int
    created: bool
