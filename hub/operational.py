"""Operational events: what the hub publishes into a store about its own integrations and jobs.

Three keys (`hub.events.OPERATIONAL_KEYS`), observable like any other and routed like any
other (a chat webhook, a queue), never publishable by a client:

* ``integration.disabled``: the circuit breaker switched the integration off (``cause``
  ``circuit_breaker``), an endpoint answered ``410 Gone`` (``gone``), or an operator disabled
  it through the API or the console (``operator``);
* ``integration.enabled``: an operator enabled it again (``operator``);
* ``job.failed``: a job ended ``failed`` by an attempt: its attempts were spent, or the endpoint
  answered ``410 Gone`` (``reason`` says which).

This module builds them, pure: the payload (an EP-style document, ``{"data": {...}}``), its key
and its client id. Writing them, in the transaction of the state change that causes them,
through the publish path (fan-out, conditions, ordering, idempotency), is
`hub.services.operational`'s.

**One event per state change.** Each is published by the statement that makes the change and
only when it makes it: a job is moved to ``failed`` by the worker still holding its lease, an
integration is switched off only while it is enabled (row-locked), on only while disabled. The
client id (`RESERVED_PREFIX`, then the key and what changed: the job, or the integration and
the instant of the change) makes a second write of the same change a repeat that the store's
unique index turns away, as for any event; clients may not use the prefix.

**The no-loop rule** (`emits_job_failed`): a job of an operational event that fails does not
publish ``job.failed`` (else an integration whose endpoint is down and that observes
``job.failed`` would report its own failures to itself for ever). ``integration.disabled`` is
always published, whatever the integration was delivering, since its operator must learn of it
— but never to the integration it concerns: that one is disabled by then, and publishing picks
enabled integrations only. Neither key can chain without end: ``job.failed`` never follows from
an operational event's job, and ``integration.disabled`` needs an enabled integration, which
only an operator can make one again; so a breaker that disables integrations observing each
other's ``integration.disabled`` publishes one event per integration, and stops. ``*`` does not
select operational events (`hub.events.match_candidates`): they are observed by name or by
resource (``job.*``, ``integration.*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from hub.events import INTEGRATION_DISABLED, INTEGRATION_ENABLED, JOB_FAILED, is_operational

RESERVED_PREFIX = "hub:"
"""Client ids (`id`, `Idempotency-Key`) starting with this are the hub's own."""
BODY_EXCERPT = 256
"""Characters of the endpoint's last answer a ``job.failed`` payload carries at most."""
DETAIL_EXCERPT = 1024
"""Characters of the last attempt's error detail a ``job.failed`` payload carries at most."""


class Cause(StrEnum):
    """Why an integration was switched off or on."""

    CIRCUIT_BREAKER = "circuit_breaker"
    GONE = "gone"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Subject:
    """The integration an operational event is about, as its payload names it."""

    id: UUID
    store_id: UUID
    name: str
    integration_type: str


@dataclass(frozen=True, slots=True)
class FailedJob:
    """A job that has just ended ``failed``, with its last attempt."""

    id: UUID
    event_id: UUID
    triggered_by: str
    attempts: int
    integration: Subject
    reason: str
    """The retry policy's word: ``gave up after 8 attempts``, ``the endpoint answered 410 Gone``."""
    status_code: int | None
    error_detail: str | None
    body: str | None
    processing_time: float


@dataclass(frozen=True, slots=True)
class OperationalEvent:
    """An event for the hub to publish into `store_id`."""

    store_id: UUID
    triggered_by: str
    client_id: str
    payload: dict[str, Any]


def emits_job_failed(triggered_by: str) -> bool:
    """Whether a job of an event keyed `triggered_by` that fails publishes ``job.failed``: not
    when the event is itself operational (the no-loop rule, module docstring)."""
    return not is_operational(triggered_by)


def timestamp(at: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, as the API writes times."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def excerpt(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters (an ellipsis marks the cut); None stays None."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _integration(subject: Subject) -> dict[str, Any]:
    return {
        "type": "integration",
        "id": str(subject.id),
        "name": subject.name,
        "integration_type": subject.integration_type,
    }


def _client_id(key: str, *parts: object) -> str:
    return RESERVED_PREFIX + ":".join([key, *(str(part) for part in parts)])


def integration_disabled(
    subject: Subject,
    *,
    cause: Cause,
    reason: str,
    at: datetime,
    key_id: UUID | None = None,
) -> OperationalEvent:
    """``integration.disabled``: `subject` was switched off at `at` (the change's timestamp,
    which names it in the client id) for `reason`; `key_id`: the operator's API key."""
    data = {
        **_integration(subject),
        "enabled": False,
        "cause": str(cause),
        "reason": reason,
        "key_id": None if key_id is None else str(key_id),
        "disabled_at": timestamp(at),
    }
    return OperationalEvent(
        subject.store_id,
        INTEGRATION_DISABLED,
        _client_id(INTEGRATION_DISABLED, subject.id, timestamp_key(at)),
        {"data": data},
    )


def integration_enabled(
    subject: Subject, *, reason: str, at: datetime, key_id: UUID | None, resumed_jobs: int
) -> OperationalEvent:
    """``integration.enabled``: an operator switched `subject` on at `at`; `resumed_jobs` held
    jobs (the circuit breaker's) became pending again."""
    data = {
        **_integration(subject),
        "enabled": True,
        "cause": str(Cause.OPERATOR),
        "reason": reason,
        "key_id": None if key_id is None else str(key_id),
        "resumed_jobs": resumed_jobs,
        "enabled_at": timestamp(at),
    }
    return OperationalEvent(
        subject.store_id,
        INTEGRATION_ENABLED,
        _client_id(INTEGRATION_ENABLED, subject.id, timestamp_key(at)),
        {"data": data},
    )


def job_failed(job: FailedJob, *, at: datetime) -> OperationalEvent:
    """``job.failed``: `job` ended ``failed`` at `at`. Its last answer is cut to
    `BODY_EXCERPT` characters and its error detail to `DETAIL_EXCERPT`; no secret is in either
    (deliverers scrub what they report, as the job's logs show it)."""
    data = {
        "type": "integration-job",
        "id": str(job.id),
        "status": "failed",
        "triggered_by": job.triggered_by,
        "attempts": job.attempts,
        "reason": job.reason,
        "failed_at": timestamp(at),
        "last_attempt": {
            "status_code": job.status_code,
            "error_detail": excerpt(job.error_detail, DETAIL_EXCERPT),
            "body": excerpt(job.body, BODY_EXCERPT),
            "processing_time": job.processing_time,
        },
        "integration": _integration(job.integration),
        "event": {"type": "event", "id": str(job.event_id), "triggered_by": job.triggered_by},
    }
    return OperationalEvent(
        job.integration.store_id, JOB_FAILED, _client_id(JOB_FAILED, job.id), {"data": data}
    )


def timestamp_key(at: datetime) -> str:
    """The instant of a change as a client id part: microseconds, so two changes of one
    integration (which are serialised by its row lock) never share one."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
