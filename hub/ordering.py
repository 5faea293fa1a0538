"""Ordered delivery (beyond EP): an integration's `ordering_key` and the key value of an event.

An integration may name an `ordering_key`, a dotted path into the event payload with the
conditions' path semantics (`hub.conditions.parse_path` and `resolve`: `data.id`,
`data.customer.id`, a segment of digits indexes an array). Each job of the integration then
carries the *key value* found at that path in its event's payload, and the hub delivers the jobs
of one key value one at a time, in publish order, while different values proceed concurrently.
How the queue keeps that promise is `hub.store`'s (see its docstring, "Ordering").

Which values are keys (`key_value`):

- a non-empty string, as it is: ``"o-1"``;
- a number, as JSON writes it, an integral float as the integer (``7`` and ``7.0`` are one key);
  a string and a number that read alike (``"7"`` and ``7``) are one key too;
- anything else — the path absent, ``null``, ``true``/``false``, an object, an array, ``""`` —
  is no key: the job is delivered unordered, as if the integration had no `ordering_key`.

A value longer than `MAX_VALUE_LENGTH` characters is replaced by ``sha256:`` and its digest (still
one key per value), so that the index over key values stays small.
"""

from __future__ import annotations

import functools
import hashlib
import math
from typing import Final

from hub import conditions

MAX_VALUE_LENGTH: Final = 255
"""The longest key value kept as it is; a longer one is replaced by its SHA-256."""


def parse_ordering_key(raw: object) -> tuple[str, ...]:
    """The path of an `ordering_key` (`hub.conditions.InvalidPath` when it is not one)."""
    return conditions.parse_path(raw)


@functools.lru_cache(maxsize=1024)
def _path(ordering_key: str) -> tuple[str, ...] | None:
    try:
        return conditions.parse_path(ordering_key)
    except conditions.InvalidPath:
        return None  # a hand-edited row: the integration delivers unordered


def key_value(payload: object, ordering_key: str | None) -> str | None:
    """The key value of `payload` under `ordering_key` (None: no key, the job is unordered)."""
    if ordering_key is None:
        return None
    path = _path(ordering_key)
    if path is None:
        return None
    value = conditions.resolve(payload, path)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        return None
    if not text:
        return None
    if len(text) > MAX_VALUE_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text
