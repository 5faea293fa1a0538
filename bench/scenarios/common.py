"""Helpers the scenarios share: running client tasks together, publishing many events."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any

from bench.client import EVENT_KEY, ApiError, Sent, event
from bench.context import Bench


async def together(coros: Iterable[Coroutine[Any, Any, None]], *, timeout: float) -> None:
    """Run `coros` concurrently, all within `timeout`; the first failure (or the timeout)
    cancels the others, so that nothing of a failed scenario runs on into the next one."""
    try:
        async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except ExceptionGroup as errors:
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from errors


def event_ids(group: str, count: int) -> list[str]:
    return [f"{group}:{n}" for n in range(count)]


def failures(sent: Iterable[Sent]) -> dict[str, int]:
    """Publish requests not answered 202, by status (`0 <error>`: no answer, and why)."""
    return {
        status: n
        for status, n in Counter(
            str(s.status) if s.status else f"0 {s.error}" for s in sent if not s.accepted
        ).items()
    }


async def publish_batches(
    bench: Bench,
    ids: list[str],
    *,
    concurrency: int,
    key: str = EVENT_KEY,
    check: bool = True,
    resources: Callable[[int], str] | None = None,
    accepted: list[int] | None = None,
) -> list[Sent]:
    """Publish `ids` in batches of the configured size with `concurrency` requests in flight
    (`resources`: the resource of the `n`th event, for the ordered scenarios).

    Like a well-behaved client, a batch refused with 503 and `Retry-After` (the API's admission
    under load) is sent again after that pause (at most 1 s); each refused request is kept in
    the returned list, so it shows among the answers that were not 202. `accepted` gets the
    events' numbers in the order their requests were accepted: the publish order, which a
    retried batch changes.
    """
    size = bench.config.batch_size
    numbered = list(enumerate(ids))
    batches: Iterator[list[tuple[int, str]]] = iter(
        [numbered[i : i + size] for i in range(0, len(numbered), size)]
    )
    sent: list[Sent] = []

    def body(n: int, event_id: str) -> dict[str, Any]:
        return event(event_id, key, None if resources is None else resources(n))

    async def publisher() -> None:
        for batch in batches:
            events = [body(n, i) for n, i in batch]
            while True:
                answer = await bench.client.publish(events, check=False)
                sent.append(answer)
                if answer.status != 503 or answer.retry_after is None:
                    break
                await asyncio.sleep(min(float(answer.retry_after), 1.0))
            if check and not answer.accepted:
                raise ApiError(f"publish: {answer.status}")
            if accepted is not None and answer.accepted:
                accepted.extend(n for n, _ in batch)

    await together((publisher() for _ in range(concurrency)), timeout=max(60, len(ids) / 100))
    return sent


async def warm_up(bench: Bench) -> None:
    """Publish a few events and wait for them: the worker runs, pools are open, a sample body
    is at the sink for the baseline."""
    ids = event_ids("warmup", bench.config.warmup_events)
    await publish_batches(bench, ids, concurrency=2)
    await bench.sink.wait_for("warmup", unique=len(ids), timeout=60)


_counter = itertools.count()


def unique_group(prefix: str) -> str:
    """A group name not used before in this run (sink groups never reset)."""
    return f"{prefix}{next(_counter)}"
