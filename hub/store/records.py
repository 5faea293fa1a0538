"""Frozen, typed records that the store hands to the layers above it."""

from __future__ import annotations

from dataclasses import dataclass
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
