"""The schema: stores, API keys and their access tokens, integrations, events, jobs and logs,
and VAPID keys; and around them the deployment's live processes and the console's sessions.

Alembic's migrations are the source of truth for the database; these tables mirror them, and a
test proves the two agree. The queue columns of `integration_jobs` (status, attempts,
next_attempt_at, lease owner/expiry) and its partial indexes serve the dispatcher's claim query.

**Foreign keys on the hot tables.** Every row a foreign key covers costs a lookup of the row it
points to when it is written, so the rows written for every event and every attempt carry only
the keys that tie them to their parent: a job its event and its integration, a log its job.
Their `store_id` (and a log's `integration_id`) are copies for the listings' indexes, tied to the
store through those parents (deleting a store still removes everything of it: integrations
and events with it, their jobs with those, the jobs' logs with them). Migration 0012 measured it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JOB_STATUSES = ("pending", "delivering", "succeeded", "failed", "cancelled", "held")
"""`held`: waiting while its integration is switched off by the circuit breaker; re-enabling the
integration makes held jobs pending again."""
FINISHED_STATUSES = ("succeeded", "failed", "cancelled")
ROLES = ("view", "manage", "publish", "admin")
INTEGRATION_TYPES = ("webhook", "aws_sqs", "stomp", "amqp", "web_push")
"""What the schema admits; each has a configuration model in `deliverers.config`."""
PROCESS_ROLES = ("api", "worker", "api+worker")
RESOURCE_ID_SQL = "COALESCE(payload #>> '{data,id}', payload ->> 'id')"
"""The resource id of an event's payload: `data.id`, or a delete's top-level `id` (EP's
`{"type", "id"}`); `ix_events_store_resource` indexes it (`hub.store.search` matches it)."""
"""What a registered process runs: `hub serve --no-worker`, `hub worker`, `hub serve`."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _ts(nullable: bool = False) -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), nullable=nullable, server_default=None if nullable else func.now()
    )


class Store(Base):
    """A tenant: every key, integration, event, job and log belongs to exactly one store."""

    __tablename__ = "stores"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = _ts()


class ApiKey(Base):
    """A bearer key, stored as the SHA-256 of its secret part; `prefix` finds it."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text, unique=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _ts()
    revoked_at: Mapped[datetime | None] = _ts(nullable=True)


class AccessToken(Base):
    """A short-lived bearer token issued for a key (`POST /oauth/access_token`), stored as the
    SHA-256 of the whole token; `prefix` finds it. It dies with its key: deleting the key
    deletes it, and the lookup ignores the tokens of revoked keys."""

    __tablename__ = "access_tokens"
    __table_args__ = (
        Index("ix_access_tokens_expires_at", "expires_at"),
        Index("ix_access_tokens_key_id", "key_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(Text, unique=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _ts()


class Integration(Base):
    """An operator's subscription of one target to some event keys."""

    __tablename__ = "integrations"
    __table_args__ = (
        CheckConstraint(f"integration_type IN {INTEGRATION_TYPES!r}", name="integration_type"),
        CheckConstraint("cardinality(observes) > 0", name="observes_not_empty"),
        CheckConstraint("max_in_flight IS NULL OR max_in_flight > 0", name="max_in_flight"),
        CheckConstraint("rate_limit IS NULL OR rate_limit > 0", name="rate_limit"),
        Index(
            "ix_integrations_store_created",
            "store_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index(
            "ix_integrations_observes_live",
            "observes",
            postgresql_using="gin",
            postgresql_where=text("enabled AND deleted_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    integration_type: Mapped[str] = mapped_column(Text)
    observes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    configuration: Mapped[dict[str, object]] = mapped_column(JSONB)
    signing_secret: Mapped[str] = mapped_column(Text)
    previous_signing_secret: Mapped[str | None] = mapped_column(Text)
    """The secret before the last rotation, still signed with until it expires."""
    previous_signing_secret_expires_at: Mapped[datetime | None] = _ts(nullable=True)
    conditions: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    """(beyond EP) a filter on the event payload; events that do not match create no job."""
    max_in_flight: Mapped[int | None] = mapped_column(Integer)
    """Attempts to this integration running at once, per worker; unset: no limit of its own."""
    rate_limit: Mapped[float | None] = mapped_column(Double)
    """Attempts per second to this integration, per worker; unset: unlimited."""
    ordering_key: Mapped[str | None] = mapped_column(Text)
    """(beyond EP) a dotted path into the payload: jobs of one value there are delivered one at
    a time, in publish order (`hub.ordering`); unset: unordered."""
    failing_since: Mapped[datetime | None] = _ts(nullable=True)
    """Start of the current unbroken stretch of failed attempts (the circuit breaker's clock)."""
    last_success_at: Mapped[datetime | None] = _ts(nullable=True)
    """When its newest successful attempt was recorded (the log's `created_at`): moved by the
    statement that records attempts (`hub.store.attempts`), so that a status reads it from
    here rather than walking back through the logs past every failure."""
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()
    deleted_at: Mapped[datetime | None] = _ts(nullable=True)


class VapidKey(Base):
    """A store's VAPID key pair (RFC 8292), which signs its Web Push deliveries: made on first
    use, replaced by a rotation. `private_key` is stored encrypted (`hub.crypto`)."""

    __tablename__ = "vapid_keys"

    store_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
    )
    public_key: Mapped[str] = mapped_column(Text)
    """The uncompressed P-256 point in base64url: browsers' `applicationServerKey`."""
    private_key: Mapped[str] = mapped_column(Text)
    """The private scalar in base64url, sealed (`enc:v1:…`)."""
    created_at: Mapped[datetime] = _ts()


class Event(Base):
    """A published domain event; `client_id` makes publishing idempotent per store."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "uq_events_store_client_id",
            "store_id",
            "client_id",
            unique=True,
            postgresql_where=text("client_id IS NOT NULL"),
        ),
        Index("ix_events_store_created", "store_id", text("created_at DESC"), text("id DESC")),
        Index("ix_events_created", "created_at"),
        Index(
            "ix_events_store_resource",
            "store_id",
            text(RESOURCE_ID_SQL),
            text("created_at DESC"),
            text("id DESC"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    client_id: Mapped[str | None] = mapped_column(Text)
    request_digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    """With a client id: the SHA-256 of the event as published (`triggered_by` and `payload`),
    so that the id reused for another event is told apart from a repeat."""
    triggered_by: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _ts()


class Replay(Base):
    """(beyond EP) a request to re-queue an integration's jobs of a time window; its jobs point
    back with `replay_id`, so its progress is counted from them."""

    __tablename__ = "replays"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime | None] = _ts(nullable=True)
    statuses: Mapped[list[str]] = mapped_column(ARRAY(Text))
    total: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _ts()


class IntegrationJob(Base):
    """One event to be delivered to one integration: the unit the dispatcher claims."""

    __tablename__ = "integration_jobs"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index(
            "ix_integration_jobs_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_integration_jobs_due_first",
            "next_attempt_at",
            postgresql_where=text("status = 'pending' AND attempts = 0"),
        ),
        Index(
            "ix_integration_jobs_due_retry",
            "next_attempt_at",
            postgresql_where=text("status = 'pending' AND attempts > 0"),
        ),
        Index(
            "ix_integration_jobs_retry_of",
            "retry_of",
            postgresql_where=text("retry_of IS NOT NULL"),
        ),
        Index(
            "ix_integration_jobs_leased",
            "lease_expires_at",
            postgresql_where=text("status = 'delivering'"),
        ),
        Index(
            "ix_integration_jobs_held",
            "integration_id",
            postgresql_where=text("status = 'held'"),
        ),
        Index(
            "ix_integration_jobs_integration_created",
            "integration_id",
            text("created_at DESC"),
            text("id DESC"),
            # What a replay's count reads of each job, so that it is counted from the index
            # alone (`hub.store.replays.count_to_replay`).
            postgresql_include=["event_id", "status", "triggered_by"],
        ),
        Index("ix_integration_jobs_event", "event_id"),
        Index(
            "ix_integration_jobs_replay",
            "replay_id",
            postgresql_where=text("replay_id IS NOT NULL"),
        ),
        Index(
            "ix_integration_jobs_finished",
            "completed_at",
            postgresql_where=text("status IN ('succeeded', 'failed', 'cancelled')"),
        ),
        Index(
            "ix_integration_jobs_integration_status",
            "integration_id",
            "status",
        ),
        Index(
            "ix_integration_jobs_ordering_unfinished",
            "integration_id",
            "ordering_value",
            "id",
            postgresql_where=text(
                "ordering_value IS NOT NULL AND status IN ('pending', 'delivering', 'held')"
            ),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    """Its event's store, a copy with no foreign key of its own (module docstring)."""
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    triggered_by: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = _ts(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("integration_jobs.id", ondelete="SET NULL")
    )
    replay_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("replays.id", ondelete="SET NULL")
    )
    ordering_value: Mapped[str | None] = mapped_column(Text)
    """The key value of an ordered integration's job (`hub.ordering`); None: unordered."""
    blocked_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    """While the job waits for an earlier job of its key: that job (its predecessor). No foreign
    key: a job only ever waits for an unfinished one, and only finished jobs are purged."""
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = _ts()
    completed_at: Mapped[datetime | None] = _ts(nullable=True)


class IntegrationLog(Base):
    """One delivery attempt of one job, whatever its outcome."""

    __tablename__ = "integration_logs"
    __table_args__ = (
        Index(
            "ix_integration_logs_integration_created",
            "integration_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index("ix_integration_logs_job_attempt", "job_id", "attempt"),
        Index(
            "ix_integration_logs_store_created",
            "store_id",
            text("created_at DESC"),
            text("id DESC"),
        ),
        Index("ix_integration_logs_created", "created_at"),
        Index(
            "ix_integration_logs_failed",
            "integration_id",
            text("created_at DESC"),
            text("id DESC"),
            postgresql_where=text("NOT succeeded"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    """Its job's store, and `integration_id` its job's integration: copies with no foreign keys
    of their own (module docstring)."""
    integration_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("integration_jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    processing_time: Mapped[float] = mapped_column(Double)
    status_code: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    error_detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _ts()


class IntegrationLogRollup(Base):
    """One integration's attempts of ten minutes, rolled up from the logs by the workers
    (`hub.store.rollup`) for the console's charts: `succeeded` and `failed` count each of its
    ten minutes; `durations` is a sparse histogram of the attempts' processing times,
    `{"<bucket>": count}` over `rollup.BOUNDS`."""

    __tablename__ = "integration_log_rollups"
    __table_args__ = (
        Index("ix_integration_log_rollups_store_period", "store_id", "period"),
        Index("ix_integration_log_rollups_period", "period"),
    )

    integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    succeeded: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    failed: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    duration_sum: Mapped[float] = mapped_column(Double)
    durations: Mapped[dict[str, int]] = mapped_column(JSONB)


class RollupProgress(Base):
    """How far a rollup pass has got: every minute before `done_until` is rolled up."""

    __tablename__ = "rollup_progress"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    done_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HubProcess(Base):
    """A live `hub serve` or `hub worker` process: its row is written by its heartbeat and
    deleted when it stops (or, once stale, by another process's heartbeat)."""

    __tablename__ = "hub_processes"
    __table_args__ = (
        CheckConstraint(f"role IN {PROCESS_ROLES!r}", name="role"),
        CheckConstraint("jobs_in_flight >= 0", name="jobs_in_flight_not_negative"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    """`host:pid:random`, also the lease owner of the jobs its dispatcher claims."""
    role: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    """Where an API process listens (`host:port`); None for a worker."""
    started_at: Mapped[datetime] = _ts()
    last_seen_at: Mapped[datetime] = _ts()
    jobs_in_flight: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class ConsoleSession(Base):
    """A signed-in console session. The browser holds a random id; only its SHA-256 is stored,
    so the table alone cannot be used to sign in."""

    __tablename__ = "console_sessions"
    __table_args__ = (
        Index("ix_console_sessions_key_created", "key_id", "created_at"),
        Index("ix_console_sessions_expires", "expires_at"),
    )

    id_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("stores.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(Text)
    csrf: Mapped[str] = mapped_column(Text)
    flash: Mapped[list[list[str]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    """Messages for the next page the session sees: `[kind, text]` pairs."""
    created_at: Mapped[datetime] = _ts()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = _ts()


# The tables as the expression language writes queries against them (`hub.store`'s SQL rule).
stores = cast(Table, Store.__table__)
api_keys = cast(Table, ApiKey.__table__)
access_tokens = cast(Table, AccessToken.__table__)
integrations = cast(Table, Integration.__table__)
events = cast(Table, Event.__table__)
replays = cast(Table, Replay.__table__)
jobs = cast(Table, IntegrationJob.__table__)
logs = cast(Table, IntegrationLog.__table__)
vapid_keys = cast(Table, VapidKey.__table__)
processes = cast(Table, HubProcess.__table__)
console_sessions = cast(Table, ConsoleSession.__table__)
log_rollups = cast(Table, IntegrationLogRollup.__table__)
rollup_progress = cast(Table, RollupProgress.__table__)
