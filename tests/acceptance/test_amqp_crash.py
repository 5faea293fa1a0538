"""The AMQP ingest in a real `hub worker` process, SIGKILLed mid-burst: every message published to
the exchange ends up stored exactly once, its jobs too, and nothing is dead-lettered.

A message is acked only after its event is committed, so the kill strands two kinds of message:
received but not committed (the broker redelivers it; it is stored by the next process) and
committed but not acked (redelivered too; its `message_id` is a client id the store has seen, so
nothing is stored twice).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.store.engine import create_engine
from tests.integration.amqp_helpers import amqp_settings, broker, env_of
from tests.support.processes import Processes, api_on
from tests.support.sinks import Sink, running_sink
from tests.support.waiting import eventually

EVENTS = 1000


async def _counts(engine: AsyncEngine) -> tuple[int, int, int]:
    """(events, distinct client ids, jobs)."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM events), "
                    "(SELECT count(DISTINCT client_id) FROM events), "
                    "(SELECT count(*) FROM integration_jobs)"
                )
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def test_a_worker_killed_mid_burst_stores_every_message_exactly_once(
    fresh_db: str, tmp_path: Path
) -> None:
    names = amqp_settings()
    engine = create_engine(fresh_db, pool_size=3)
    settings = env_of(names) | {
        "HUB_AMQP_PREFETCH": "64",
        "HUB_ALLOWED_NETWORKS": "127.0.0.0/8",
        "HUB_WORKER_POLL_INTERVAL": "0.2",
    }
    try:
        async with (
            broker(names) as test_broker,
            running_sink(Sink()) as sink,
            api_on(fresh_db, engine) as api,
        ):
            await api.create_webhook(sink.url)
            key = {"x-hub-key": api.tenant.keys["publish"]}
            procs = Processes(fresh_db, tmp_path, settings)
            try:
                first = procs.start_worker()
                # Published before the kill and while the worker is down: all of it is durable.
                for start in range(0, EVENTS, 100):
                    await asyncio.gather(
                        *(
                            test_broker.publish(
                                {
                                    "type": "event",
                                    "triggered_by": "order.created",
                                    "payload": {"data": {"type": "order", "id": f"o-{i}"}},
                                },
                                routing_key="order.created",
                                headers=key,
                                message_id=f"msg-{i}",
                            )
                            for i in range(start, start + 100)
                        )
                    )

                async def some_stored() -> bool:
                    return (await _counts(engine))[0] >= EVENTS // 10

                await eventually(some_stored, timeout=30, what="the first events stored")
                await procs.sigkill(first)
                stored_at_kill = (await _counts(engine))[0]
                assert stored_at_kill < EVENTS, "the burst was over before the kill"

                async def given_back() -> bool:
                    ready = await test_broker.ready_count("amqp_queue")
                    return stored_at_kill + ready >= EVENTS

                # Every message not yet acked is back in the queue, the stranded ones included.
                await eventually(given_back, timeout=10, what="unacked messages requeued")
                requeued = await test_broker.ready_count("amqp_queue")

                procs.start_worker()

                async def all_stored() -> bool:
                    return (await _counts(engine))[1] == EVENTS

                await eventually(all_stored, timeout=60, what="every message stored")

                async def drained() -> bool:
                    return await test_broker.ready_count("amqp_queue") == 0

                await eventually(drained, timeout=30, what="the queue drained")
                events, distinct, jobs = await _counts(engine)
                assert (events, distinct, jobs) == (EVENTS, EVENTS, EVENTS)
                assert await test_broker.ready_count("amqp_dead_letter_queue") == 0
                print(
                    f"stored at kill: {stored_at_kill}; requeued: {requeued}; "
                    f"committed but unacked at the kill: {stored_at_kill + requeued - EVENTS}"
                )
            except BaseException:
                print(procs.output())
                raise
            finally:
                procs.kill_all()
    finally:
        await engine.dispose()
