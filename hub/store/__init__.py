"""Storage: the schema, the engine, and every query, one module per aggregate or queue phase.

The modules:

- `models` (the schema and its `Table`s), `records` (the frozen records handed up), `engine`
  (the engine, the driver connection, migrations), `compiled` (statements compiled once, and the
  literals that match partial indexes);
- the API's aggregates: `stores` (stores, API keys and their access tokens), `integrations`
  (with publishing's fan-out read, the signing secrets, the secrets at rest, and cancelling or
  resuming its waiting jobs), `events`, `jobs` and `logs` (with an integration's status), whose
  lists take `listing`'s typed conditions and orders;
- the queue, by job phase: `enqueue` (publishing's insert, the wake-up NOTIFY, a manual retry),
  `claiming` (leases, and a claimed job held, cancelled or given back), `attempts` (recording an
  attempt, a 410's switch-off), with `breaker` (the circuit breaker's clock and trip), `replays`
  (re-queueing a window of jobs) and `retention` (purging old rows), with `ordered` (the queues
  of ordered integrations' keys: their lock, appending to them, letting the next job go). No
  other module writes to `integration_jobs` or `integration_logs`;
- around them: `processes` (the process registry's heartbeat, and the deployment's status: the
  queue counted by lane, each figure on an index) and `sessions` (console sessions, by the
  digest of their id).

**Job life.** ``pending`` → (claimed) ``delivering`` → ``succeeded`` | ``pending`` (retry
scheduled) | ``failed``; ``pending`` → ``cancelled`` when its integration is disabled or deleted;
``pending`` → ``held`` when the circuit breaker switches its integration off, and ``held`` →
``pending`` when it is enabled again.

**Leases.** Claiming sets a lease (`lease_owner`, `lease_expires_at`). `attempts` counts
*recorded* attempts: an attempt is numbered ``attempts + 1`` when claimed and counted only when
its log row is written, in the same transaction. A worker that dies mid-attempt therefore leaves
no log and no count; once its lease expires `claiming.release_stalled` puts the job back to
``pending`` and the same attempt number is tried again (the only way a delivery can be
duplicated).

**Fair claiming.** Due jobs wait in two lanes, each with its own partial index: first attempts
(``attempts = 0``) and retries. A claim takes from both in turn, and the worker caps how many
of its slots retries may hold, so a failing endpoint's backlog of retries never starves the
first attempts of healthy integrations. **Backpressure.** An integration with `max_in_flight`
is not claimed beyond that many jobs in ``delivering`` (counted across all workers; two workers
claiming at the same instant may overshoot by one claim's worth until their next claim), one
with `rate_limit` gets at most one second's worth of jobs per claim (the worker's limiter paces
them), and an integration at its limit is skipped by the scan itself, so its backlog blocks no
one behind it.

**Circuit breaker.** Recording an attempt moves the breaker's clock in the same transaction
(`breaker`); an integration it switches off has its pending jobs held, and jobs of such an
integration that come back from flight are held at claim time too.

**Ordering.** The jobs of an integration with an `ordering_key` carry a key value
(`ordering_value`, `hub.ordering`); the unfinished jobs of one value form its queue, in id order
(UUIDv7: publish order). Only the queue's head proceeds (pending, delivering, retried, held like
any job); the others *wait*: ``pending`` (or ``held``) with `blocked_by` naming the job before
them and ``next_attempt_at`` NULL, which keeps them out of the due lanes altogether — a claim's
index scan stops before NULLs, so no claim ever reads a waiting job, however many wait, and the
claim itself knows nothing of ordering. A job is appended behind its key's last unfinished job
(`ordered.append_jobs`: publishing, a manual retry, a replay; due at once when there is none),
and when a head ends (succeeded, failed or cancelled) the next one is let go
(`ordered.let_next_proceed`: due now, `blocked_by` cleared). Disabling an integration cancels its
waiting jobs with the others; resuming held jobs leaves the waiting ones waiting. What makes it
safe under concurrency is one lock per integration's queues (`ordered.lock_queues`, an advisory
lock shared by a stripe of integrations): every transaction that appends to a key or ends one of
its unfinished jobs — a publish with ordered jobs, a retry, a replay, recording a batch in which
ordered jobs end, cancelling claimed ordered jobs, disabling or deleting an integration — takes
it before any row lock, and the statements after it see all that its earlier holders committed.

**Which SQL style goes where.** One rule for every module here:

1. *The expression language (Core) on an `AsyncConnection`*, written against the tables of
   `models`, for everything that does not run per published event or per delivery attempt: the
   API's and the CLI's reads and writes, a manual retry's and a replay's reads, retention, a
   stopping worker's release, resuming held jobs, the heartbeat and the status, console
   sessions.
2. *asyncpg prepared statements* for the hot paths, the statements that run for every published
   event, every request or every delivery attempt: the key check (`stores.find_active_key`,
   `stores.find_active_token`),
   fan-out (`integrations.live_integrations_observing`), the publish insert and its wake-up
   (`enqueue`), the worker's loop (`claiming`: claim, hold, cancel, release stalled, next due),
   recording (`attempts`, `breaker`) and the ordered queues (`ordered`: a retry and a replay
   append through the same statement, on their transaction's driver connection). Their SQL is
   a constant string in capitals beside its function, with `$n` placeholders and arrays
   (`unnest`, `= ANY`) rather than one row of parameters each, so one text serves any batch;
   they run on the driver connection (`engine.driver`, `engine.driver_of`), where asyncpg
   prepares each text once per connection.
3. *Core compiled once* (`compiled.Compiled`) only where a hot statement is composed from parts
   (the claim) or is shared by both paths (`integrations.cancel_pending`: the API runs it through
   SQLAlchemy, a 410 on the driver connection).
4. A constant that a partial index's predicate must match is a literal (`compiled.PENDING`, …),
   not a bound parameter: a generic plan cannot prove that ``status = $1`` implies
   ``status = 'pending'``.
5. No `text()` in a query (the schema's DDL in `models` uses it for index expressions and server
   defaults), and no SQL built by formatting values into a string: only module constants (the
   NOTIFY channel, a lane's number, the queue locks' class) are ever formatted in.

The store imports only itself, `hub.crypto`, `hub.ids`, `hub.errors`, `hub.settings` and
libraries: what the layers above know (such as which configuration fields are secrets) they pass
in.
"""
