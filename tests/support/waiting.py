"""`eventually`: the one way a test waits for a condition, polling it, never sleeping blind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 15.0,
    what: str = "the condition",
    interval: float = 0.05,
) -> float:
    """Wait until `check()` holds and return the seconds it took; fail after `timeout`.

    `check` may be a plain or an async function; `what` names the condition in the failure.
    """
    started = time.monotonic()
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            break
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - started
