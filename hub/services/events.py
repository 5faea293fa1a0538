"""Publishing: the event and one job per matching integration, in one transaction.

An integration matches an event when its `observes` selects the event's key and its payload
`conditions` (`hub.conditions`, beyond EP) hold for the event's payload; both are decided here, in
Python, for the enabled integrations whose `observes` overlaps the key's match candidates.

Idempotency: an event's client id is its `id` attribute or, for a single event, the
`Idempotency-Key` header (for a batch, the header plus `:<index>` for events without an `id`).
Publishing a client id the store has seen with the same event returns the stored event and
creates nothing; a concurrent double publish is settled by the unique index, so exactly one
wins. The same client id with another event is an `IdempotencyConflict` (the API's 409), as the
IETF idempotency-key draft and Stripe refuse a key reused with other parameters. "The same
event" is judged on its canonical form (`request_digest`: `triggered_by` and `payload`, object
keys sorted), not on the request's bytes, so key order and spacing do not matter; an event
stored before digests were kept has none and repeats as before. A batch is judged event by
event and refused whole: one that names client ids is written in a transaction (the caller's,
or its own), so a conflict leaves nothing of it behind.

The hub's own operational events (`hub.operational`) take the same path (`prepare_own`, then
`write`): fan-out, conditions, ordering and idempotency as for any event. Clients may neither
publish their keys nor use client ids of the hub's prefix (`hub.operational.RESERVED_PREFIX`),
which would let them forge, or squat on and so silence, one of the hub's reports.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from hub import conditions, ordering
from hub.errors import (
    Conflict,
    DomainError,
    FanOutTooLarge,
    IdempotencyConflict,
    NotFound,
    PayloadTooLarge,
    Problem,
    ValidationFailed,
)
from hub.events import TEST_KEY, EventCatalogue, match_candidates, matches, validate_published
from hub.ids import uuid7
from hub.operational import RESERVED_PREFIX, OperationalEvent
from hub.services.inputs import EventIn
from hub.store import enqueue, events, integrations, jobs
from hub.store.engine import driver_of
from hub.store.records import EventRecord, JobRecord, Published

log = structlog.get_logger(__name__)


def _field(batch: bool, index: int, name: str) -> str:
    return f"data[{index}].{name}" if batch else f"data.{name}"


def _reserved(what: str) -> str:
    return (
        f"{what} starts with {RESERVED_PREFIX!r}, which is reserved for the client ids of the "
        "events the hub publishes itself: choose another"
    )


def _client_ids(
    items: Sequence[EventIn],
    batch: bool,
    idempotency_key: str | None,
    key_name: str = "Idempotency-Key",
) -> list[str | None]:
    found: list[tuple[str, str | None]] = []
    if idempotency_key is not None and idempotency_key.startswith(RESERVED_PREFIX):
        found.append((_reserved(f"the {key_name}"), key_name))
    for index, item in enumerate(items):
        if item.id is not None and item.id.startswith(RESERVED_PREFIX):
            found.append((_reserved(f"the id {item.id!r}"), _field(batch, index, "id")))
    ids: list[str | None] = []
    for index, item in enumerate(items):
        if not batch and idempotency_key and item.id and item.id != idempotency_key:
            found.append(("the Idempotency-Key header and data.id differ", "data.id"))
        if item.id is not None:
            ids.append(item.id)
        elif idempotency_key:
            ids.append(idempotency_key if not batch else f"{idempotency_key}:{index}")
        else:
            ids.append(None)
    seen: set[str] = set()
    for index, client_id in enumerate(ids):
        if client_id is not None and client_id in seen:
            found.append(
                (f"id {client_id!r} appears twice in this batch", _field(batch, index, "id"))
            )
        if client_id is not None:
            seen.add(client_id)
    if found:
        raise ValidationFailed(found)
    return ids


def _check(
    items: Sequence[EventIn], batch: bool, catalogue: EventCatalogue, max_bytes: int
) -> list[str]:
    """Validate keys and payload sizes; return each payload as JSON text (as it is stored)."""
    found: list[tuple[str, str | None]] = []
    texts: list[str] = []
    for index, item in enumerate(items):
        reason = validate_published(item.triggered_by, catalogue)
        if reason is not None:
            found.append((reason, _field(batch, index, "triggered_by")))
        encoded = orjson.dumps(item.payload)
        if len(encoded) > max_bytes:
            raise PayloadTooLarge(
                f"the event payload is {len(encoded)} bytes; the limit is {max_bytes}",
                source=_field(batch, index, "payload"),
            )
        texts.append(encoded.decode())
    if found:
        raise ValidationFailed(found)
    return texts


def request_digest(triggered_by: str, payload: dict[str, Any]) -> bytes:
    """SHA-256 of the event's canonical form: `[triggered_by, payload]` as JSON, keys sorted."""
    canonical = orjson.dumps([triggered_by, payload], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).digest()


PayloadFilter = Callable[[dict[str, Any]], bool]


def _always(payload: dict[str, Any]) -> bool:
    return True


def _never(payload: dict[str, Any]) -> bool:
    return False


def payload_filter(target: integrations.FanoutTarget) -> PayloadFilter:
    """Whether an event's payload passes the integration's conditions (none: every one does).

    Stored conditions were validated on the way in; one that no longer parses (a hand-edited
    row) matches nothing and is logged, rather than failing every publish of the store.
    """
    if target.conditions is None:
        return _always
    try:
        return functools.partial(conditions.evaluate, conditions.parse(target.conditions))
    except conditions.InvalidCondition as exc:
        log.error("integration_conditions_invalid", integration_id=str(target.id), error=str(exc))
        return _never


@dataclass(frozen=True, slots=True)
class Prepared:
    """A publish request checked and given ids, ready to be written (`write`)."""

    store_id: UUID
    events: list[enqueue.NewEvent]
    items: Sequence[EventIn]
    batch: bool
    key: tuple[str | None, str]
    """The request's idempotency key, and what the edge calls it (for the answers)."""
    max_jobs: int
    """The most jobs the request may create (0: no limit)."""

    @property
    def all_or_nothing(self) -> bool:
        """A batch naming client ids: an `IdempotencyConflict` of one of its events (found once
        written) must refuse it whole, so it is written in a transaction of its own."""
        return self.batch and any(e.client_id is not None for e in self.events)


Outcome = list[Published] | DomainError
"""What `write` says of one request: its results in input order, or why it was refused."""


def prepare(
    catalogue: EventCatalogue,
    store_id: UUID,
    items: Sequence[EventIn],
    *,
    batch: bool,
    idempotency_key: str | None,
    max_event_bytes: int,
    max_jobs: int = 0,
    key_name: str = "Idempotency-Key",
) -> Prepared:
    """Check a publish request (keys, sizes, client ids) without touching the database.

    `max_jobs` bounds the jobs its fan-out may create (0: no limit; see `write`); `key_name` is
    what the edge calls `idempotency_key` in its answers (an AMQP message's is its
    `message_id`). Raises `ValidationFailed` or `PayloadTooLarge`.
    """
    texts = _check(items, batch, catalogue, max_event_bytes)
    client_ids = _client_ids(items, batch, idempotency_key, key_name)
    return Prepared(
        store_id,
        [
            enqueue.NewEvent(
                id=uuid7(),
                store_id=store_id,
                client_id=client_id,
                triggered_by=item.triggered_by,
                payload=item.payload,
                payload_json=text,
                digest=None
                if client_id is None
                else request_digest(item.triggered_by, item.payload),
            )
            for item, client_id, text in zip(items, client_ids, texts, strict=True)
        ],
        items,
        batch,
        (idempotency_key, key_name),
        max_jobs,
    )


def prepare_own(store_id: UUID, own: Sequence[OperationalEvent]) -> Prepared:
    """A request of the hub's own events (`hub.operational`) into one store, for `write`:
    checked by the hub that makes them, not by the rules of what clients may publish; each
    carries its client id, so a second write of one is a repeat that creates nothing."""
    items = [
        EventIn(type="event", triggered_by=e.triggered_by, payload=e.payload, id=e.client_id)
        for e in own
    ]
    return Prepared(
        store_id,
        [
            enqueue.NewEvent(
                id=uuid7(),
                store_id=store_id,
                client_id=e.client_id,
                triggered_by=e.triggered_by,
                payload=e.payload,
                payload_json=orjson.dumps(e.payload).decode(),
                digest=request_digest(e.triggered_by, e.payload),
            )
            for e in own
        ],
        items,
        batch=True,
        key=(None, "Idempotency-Key"),
        max_jobs=0,
    )


async def publish(
    conn: AsyncConnection,
    catalogue: EventCatalogue,
    store_id: UUID,
    items: Sequence[EventIn],
    *,
    batch: bool,
    idempotency_key: str | None,
    max_event_bytes: int,
    max_jobs: int = 0,
    key_name: str = "Idempotency-Key",
) -> list[Published]:
    """Store the events and their jobs; results in input order (`prepare`, then `write`).

    Raises what `write` refuses the request with. A batch naming client ids is written in a
    transaction (the caller's, or one of its own), so a conflict leaves nothing of it behind.
    """
    request = prepare(
        catalogue,
        store_id,
        items,
        batch=batch,
        idempotency_key=idempotency_key,
        max_event_bytes=max_event_bytes,
        max_jobs=max_jobs,
        key_name=key_name,
    )
    if request.all_or_nothing and not conn.in_transaction():
        async with conn.begin():
            return settled(await write(conn, [request]))[0]
    return settled(await write(conn, [request]))[0]


def settled(outcomes: Sequence[Outcome]) -> list[list[Published]]:
    """The results of each request, or the first refusal raised."""
    for outcome in outcomes:
        if isinstance(outcome, DomainError):
            raise outcome
    return [outcome for outcome in outcomes if not isinstance(outcome, DomainError)]


async def write(
    conn: AsyncConnection, requests: Sequence[Prepared], *, wake: bool = True
) -> list[Outcome]:
    """Store the events of several prepared requests (of any stores) and their jobs; for each
    request, its results in input order, or why it was refused. Unless not to `wake`, the
    workers are woken for the new jobs (else the caller does, after commit: `wake_workers`).

    The integrations of each store are read, then every event and the jobs of those not seen
    before are written by one statement (`enqueue.insert_published`), atomic on its own: one
    round trip per store and one more on the driver connection, inside the caller's transaction
    if it has begun one. Jobs of ordered integrations (`hub.ordering`) add a transaction, their
    queue lock and one more statement. Within a request the events keep their array order
    (their jobs' ids grow along it). Requests that name the same client id are settled by the
    unique index as concurrent ones are: the first is stored, the others answer with it.

    Refused, each on its own: a request whose fan-out would create more than its `max_jobs`
    (`FanOutTooLarge`, before anything of it is written; repeats count too, since which are
    repeats is known only once written), and one naming a client id the store has seen with
    another event (`IdempotencyConflict`: such an event was not written; an `all_or_nothing`
    request is to be written alone, in a transaction its refusal rolls back).
    """
    now = datetime.now(UTC)
    db = await driver_of(conn)
    by_store: dict[UUID, list[int]] = {}
    for index, request in enumerate(requests):
        by_store.setdefault(request.store_id, []).append(index)
    outcomes: list[Outcome | None] = [None] * len(requests)
    jobs_total: dict[UUID, int] = {}
    new_jobs: list[enqueue.NewJob] = []
    for store_id, indexes in by_store.items():
        new = [event for i in indexes for event in requests[i].events]
        candidates = sorted({c for e in new for c in match_candidates(e.triggered_by)})
        targets = await integrations.live_integrations_observing(db, store_id, candidates)
        filters = {t.id: payload_filter(t) for t in targets}
        for i in indexes:
            request = requests[i]
            jobs_of_request: list[enqueue.NewJob] = []
            for event in request.events:
                matched = [
                    t
                    for t in targets
                    if matches(t.observes, event.triggered_by) and filters[t.id](event.payload)
                ]
                jobs_total[event.id] = len(matched)
                jobs_of_request += [
                    enqueue.NewJob(
                        t.id,
                        event.id,
                        event.triggered_by,
                        # An ordered integration's job carries its event's key value
                        # (`hub.ordering`); `insert_published` appends such jobs to their keys'
                        # queues.
                        None
                        if t.ordering_key is None
                        else ordering.key_value(event.payload, t.ordering_key),
                    )
                    for t in matched
                ]
            if request.max_jobs and len(jobs_of_request) > request.max_jobs:
                outcomes[i] = FanOutTooLarge(
                    f"This request would create {len(jobs_of_request)} jobs "
                    f"({len(request.events)} events, each to every matching integration); one "
                    f"publish request may create at most {request.max_jobs} "
                    "(HUB_MAX_JOBS_PER_PUBLISH): publish fewer events per request",
                    source="data",
                )
            else:
                new_jobs += jobs_of_request
    admitted = [i for i, outcome in enumerate(outcomes) if outcome is None]
    everything = [event for i in admitted for event in requests[i].events]
    inserted = await enqueue.insert_published(db, everything, new_jobs, now, wake=wake)

    for store_id, indexes in by_store.items():
        live = [i for i in indexes if outcomes[i] is None]
        repeated = [
            e.client_id
            for i in live
            for e in requests[i].events
            if e.id not in inserted and e.client_id is not None
        ]
        existing = await events.events_by_client_id(conn, store_id, repeated)
        existing_counts = await jobs.job_counts_by_event(
            conn, [record.id for record, _ in existing.values()]
        )
        for i in live:
            request = requests[i]
            conflicts = _conflicts(
                request.events, request.items, inserted, existing, request.batch, request.key
            )
            if conflicts:
                outcomes[i] = IdempotencyConflict(conflicts)
                continue
            results = []
            for event in request.events:
                if event.id in inserted:
                    record = EventRecord(
                        id=event.id,
                        store_id=store_id,
                        client_id=event.client_id,
                        triggered_by=event.triggered_by,
                        payload=event.payload,
                        created_at=now,
                    )
                    results.append(Published(record, jobs_total.get(event.id, 0), created=True))
                else:
                    assert event.client_id is not None
                    record, _ = existing[event.client_id]
                    count = existing_counts.get(record.id, 0)
                    results.append(Published(record, count, created=False))
            outcomes[i] = results
    return [outcome for outcome in outcomes if outcome is not None]


def created_jobs(outcomes: Sequence[Outcome]) -> bool:
    """Whether `write`'s outcomes include a new event with jobs: workers to wake."""
    return any(
        p.created and p.jobs_total
        for outcome in outcomes
        if isinstance(outcome, list)
        for p in outcome
    )


async def wake_workers(conn: AsyncConnection) -> None:
    """Wake the workers for jobs that `write(..., wake=False)` committed; a wake-up lost to the
    database going away costs them a poll interval (`enqueue.wake_after_commit`)."""
    await enqueue.wake_after_commit(await driver_of(conn))


def _conflicts(
    new: Sequence[enqueue.NewEvent],
    items: Sequence[EventIn],
    inserted: set[UUID],
    existing: dict[str, tuple[EventRecord, bytes | None]],
    batch: bool,
    key: tuple[str | None, str],
) -> list[Problem]:
    """One problem per event whose client id the store has seen with another event; `key` is
    the idempotency key and what the edge calls it."""
    idempotency_key, key_name = key
    found: list[Problem] = []
    for index, (event, item) in enumerate(zip(new, items, strict=True)):
        if event.id in inserted or event.client_id is None:
            continue
        stored, digest = existing[event.client_id]
        if digest is None or digest == event.digest:
            continue  # a repeat (or an event from before digests: taken as one)
        if item.id is not None:
            what, source = f"The id {event.client_id!r}", _field(batch, index, "id")
        elif batch:
            what = f"The {key_name} {idempotency_key!r} (as {event.client_id!r})"
            source = f"data[{index}]"
        else:
            what, source = f"The {key_name} {idempotency_key!r}", key_name
        published = stored.created_at.astimezone(UTC).isoformat(timespec="milliseconds")
        found.append(
            (
                f"{what} was already used for a different event "
                f"(published {published.replace('+00:00', 'Z')}, id {stored.id}): a repeat "
                "must carry the same triggered_by and payload; publish another event under "
                "another key",
                source,
            )
        )
    return found


TEST_MESSAGE = "A test event sent by the hub to try this integration out; nothing happened."


async def send_test(conn: AsyncConnection, store_id: UUID, integration_id: UUID) -> JobRecord:
    """Publish a synthetic `integration.test` event for this one integration and return its job.

    The event and its job are stored like any other (one transaction, NOTIFY), so the job is
    delivered by the dispatcher through the normal path. Only this integration gets a job, whether
    or not it observes `integration.test` and whatever its conditions; it is unordered, whatever
    the integration's `ordering_key` (it concerns no resource). A disabled integration is a 409:
    none of its jobs would be delivered.
    """
    integration = await integrations.get_integration(conn, store_id, integration_id)
    if integration is None:
        raise NotFound()
    if not integration.enabled:
        raise Conflict("The integration is disabled; enable it before sending it a test event")
    now = datetime.now(UTC)
    event_id = uuid7()
    payload = {
        "data": {
            "type": "integration-test",
            "id": str(event_id),
            "integration_id": str(integration_id),
            "message": TEST_MESSAGE,
        }
    }
    event = enqueue.NewEvent(
        id=event_id,
        store_id=store_id,
        client_id=None,
        triggered_by=TEST_KEY,
        payload=payload,
        payload_json=orjson.dumps(payload).decode(),
    )
    await enqueue.insert_published(
        await driver_of(conn),
        [event],
        [enqueue.NewJob(integration_id, event_id, TEST_KEY)],
        now,
    )
    [job] = await jobs.jobs_of_event(conn, event_id, limit=1)
    return job


async def get(
    conn: AsyncConnection, store_id: UUID, event_id: UUID, *, job_limit: int = 100
) -> tuple[EventRecord, int, list[JobRecord]]:
    event = await events.get_event(conn, store_id, event_id)
    if event is None:
        raise NotFound()
    total = (await jobs.job_counts_by_event(conn, [event_id])).get(event_id, 0)
    return event, total, await jobs.jobs_of_event(conn, event_id, limit=job_limit)
