"""Storage: the schema, the engine, and every query, one module per aggregate or queue phase.

The modules:

- `models` (the schema and its `Table`s), `records` (the frozen records handed up), `engine`
  (the engine, the driver connection, migrations), `compiled` (statements compiled once, and the
  literals that match partial indexes);
- the API's aggregates: `stores` (stores and API keys), `integrations` (with publishing's fan-out
  read, the signing secrets, the secrets at rest, and cancelling or resuming its waiting jobs),
  `events`, `jobs` and `logs` (with an integration's status);
- the queue, by job phase: `enqueue` (publishing's insert, the wake-up NOTIFY, a manual retry),
  `claiming` (leases, and a claimed job held, cancelled or given back), `attempts` (recording an
  attempt, a 410's switch-off), with `breaker` (the circuit breaker's clock and trip), `replays`
  (re-queueing a window of jobs) and `retention` (purging old rows). No other module writes to
  `integration_jobs` or `integration_logs`.

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
"""
