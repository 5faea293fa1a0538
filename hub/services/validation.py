"""Turning pydantic's errors into the API's 422 items, with `source` as a field path."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from hub.errors import ValidationFailed


def source_path(prefix: str, loc: Sequence[int | str]) -> str:
    """`("data", "observes", 2)` under prefix "" → `data.observes[2]`."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _message(error: dict[str, object], field: str) -> str:
    kind = error.get("type")
    msg = str(error.get("msg", "is invalid"))
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        return f"{field} is not a known attribute"
    msg = msg.removeprefix("Value error, ")
    return f"{field}: {msg}"


def problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for error in exc.errors(include_url=False):
        # Tagged unions add the tag (a model name) to the location; drop those parts.
        loc = [p for p in error["loc"] if not (isinstance(p, str) and p[:1].isupper())]
        path = source_path(prefix, loc)
        out.append((_message(dict(error), path or "body"), path or None))
    return out


def raise_for(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    return ValidationFailed(problems(exc, prefix))
