"""Ordered queues: the jobs of one key value of an ordered integration (`hub.ordering`), one at a
time, in publish order. The lock that serialises what changes them, appending jobs to their keys
(publishing, a manual retry, a replay), and letting a key's next job proceed when one ends. How
they fit together: `hub.store`'s docstring, "Ordering". On the driver connection, as prepared
statements: appending is part of every ordered publish, and letting the next proceed part of
recording its attempts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

import asyncpg

#: The first key of the queue locks' advisory locks (two-key form, a space of its own beside the
#: one-key locks of migrations and retention); the second is the integration's stripe.
LOCK_CLASS: Final = 0x68756221
#: Integrations share this many locks: a transaction holds at most this many, however many
#: integrations it touches (the lock table is small), at the price of rare waits between
#: integrations that share one.
LOCK_STRIPES: Final = 64


def stripes(integration_ids: Iterable[UUID]) -> list[int]:
    """The locks of these integrations' queues, in the order every transaction takes them."""
    return sorted({integration_id.int % LOCK_STRIPES for integration_id in integration_ids})


async def lock_queues(db: asyncpg.Connection, integration_ids: Iterable[UUID]) -> None:
    """Lock the ordered queues of these integrations until the caller's transaction ends.

    Whatever appends to a key or ends one of its unfinished jobs holds this lock, taken before
    any row lock of its transaction and in one statement, so that two of them never wait for
    each other in a circle. The statements that follow see everything the lock's previous
    holders committed (each statement takes its snapshot when it starts): that is what makes an
    append see the tail it must queue behind, and an ending see the job it must let proceed.
    """
    if not db.is_in_transaction():
        raise RuntimeError("the queue locks are held until a transaction ends: begin one")
    await db.execute(_LOCK, stripes(integration_ids))


_LOCK = f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, s) FROM unnest($1::int[]) AS s"


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A job to append: to its key's queue when it has an `ordering_value`, else due now."""

    id: UUID
    """A new UUIDv7, made in the order the jobs are given (a later one has a greater id)."""
    event_id: UUID
    integration_id: UUID
    triggered_by: str
    ordering_value: str | None = None
    retry_of: UUID | None = None
    replay_id: UUID | None = None


async def append_jobs(
    db: asyncpg.Connection, store_id: UUID, queued: Sequence[QueuedJob], now: datetime
) -> list[UUID]:
    """Insert pending jobs; each ordered one goes to the end of its key's queue. Returns the
    ids of the jobs inserted, which for an ordered job may differ from the one given (`_APPEND`).

    The caller holds the queue locks of the ordered jobs' integrations (`lock_queues`).
    """
    if not queued:
        return []
    rows = await db.fetch(
        _APPEND,
        store_id,
        now,
        [j.id for j in queued],
        [j.event_id for j in queued],
        [j.integration_id for j in queued],
        [j.triggered_by for j in queued],
        [j.ordering_value for j in queued],
        [j.retry_of for j in queued],
        [j.replay_id for j in queued],
    )
    return [row[0] for row in rows]


#: The jobs in array order (`n`), each ordered one queued behind the last unfinished job of its
#: key (`tails`, seen after the queue lock) or the previous one of the same key in the array; a
#: job with nothing to wait for is due at once. Within a key, ids grow along the queue: an id
#: made before the tail's (by a publish that waited for the lock, or on another host's clock) is
#: replaced by the tail's plus the job's rank (its last 8 bytes as a number, which for a UUID's
#: variant bits is negative and so cannot overflow), so the tail is always the greatest id.
_APPEND = """
    WITH given AS (
        SELECT *
        FROM unnest(
            $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::uuid[], $9::uuid[]
        ) WITH ORDINALITY AS j(
            id, event_id, integration_id, triggered_by, ordering_value, retry_of, replay_id, n
        )
    ), tails AS (
        SELECT k.integration_id, k.ordering_value, t.id AS tail
        FROM (
            SELECT DISTINCT integration_id, ordering_value
            FROM given WHERE ordering_value IS NOT NULL
        ) AS k
        CROSS JOIN LATERAL (
            SELECT u.id FROM integration_jobs AS u
            WHERE u.integration_id = k.integration_id AND u.ordering_value = k.ordering_value
              AND u.ordering_value IS NOT NULL
              AND u.status IN ('pending', 'delivering', 'held')
            ORDER BY u.id DESC
            LIMIT 1
        ) AS t
    ), ranked AS (
        SELECT g.*, t.tail,
               row_number() OVER (
                   PARTITION BY g.integration_id, g.ordering_value ORDER BY g.n
               ) AS nth
        FROM given AS g
        LEFT JOIN tails AS t
          ON t.integration_id = g.integration_id AND t.ordering_value = g.ordering_value
    ), placed AS (
        SELECT r.*,
               greatest(
                   r.id,
                   encode(
                       substring(uuid_send(r.tail) FROM 1 FOR 8)
                       || int8send(
                           ('x' || encode(substring(uuid_send(r.tail) FROM 9 FOR 8), 'hex'))
                               ::bit(64)::bigint + r.nth
                       ),
                       'hex'
                   )::uuid
               ) AS job_id
        FROM ranked AS r
    ), chained AS (
        SELECT p.*,
               CASE WHEN p.ordering_value IS NOT NULL THEN coalesce(
                   lag(p.job_id) OVER (
                       PARTITION BY p.integration_id, p.ordering_value ORDER BY p.n
                   ),
                   p.tail
               ) END AS waits_for
        FROM placed AS p
    )
    INSERT INTO integration_jobs (
        id, store_id, event_id, integration_id, triggered_by, status, attempts, next_attempt_at,
        retry_of, replay_id, ordering_value, blocked_by, created_at, updated_at
    )
    SELECT job_id, $1, event_id, integration_id, triggered_by, 'pending', 0,
           CASE WHEN waits_for IS NULL THEN $2::timestamptz END,
           retry_of, replay_id, ordering_value, waits_for, $2, $2
    FROM chained
    ORDER BY n
    RETURNING id
"""


async def let_next_proceed(db: asyncpg.Connection, keys: Iterable[tuple[UUID, str]]) -> int:
    """After jobs of these keys (integration id, key value) ended, let each key's first
    unfinished job proceed if it waits: due now (or still held, if the circuit breaker holds
    it). Returns how many were let go.

    The caller holds the queue locks (`lock_queues`) and has ended the jobs in this transaction.
    """
    pairs = sorted(set(keys))
    if not pairs:
        return 0
    status: str = await db.execute(_NEXT, [i for i, _ in pairs], [v for _, v in pairs])
    return int(status.rpartition(" ")[2])


#: The first unfinished job of each key is the head of its queue: the one to let go if it waits,
#: and none if it already proceeds (a key has at most one job that does not wait).
_NEXT = """
    UPDATE integration_jobs AS w
    SET blocked_by = NULL,
        next_attempt_at = CASE WHEN w.status = 'pending' THEN now() END,
        updated_at = now()
    FROM (
        SELECT (
            SELECT u.id FROM integration_jobs AS u
            WHERE u.integration_id = k.integration_id AND u.ordering_value = k.ordering_value
              AND u.ordering_value IS NOT NULL
              AND u.status IN ('pending', 'delivering', 'held')
            ORDER BY u.id
            LIMIT 1
        ) AS id
        FROM unnest($1::uuid[], $2::text[]) AS k(integration_id, ordering_value)
    ) AS head
    WHERE w.id = head.id AND w.blocked_by IS NOT NULL
"""
