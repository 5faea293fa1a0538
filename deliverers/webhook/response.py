"""Reading a webhook endpoint's answer: a bounded read of its body, and its `Retry-After`."""

from __future__ import annotations

import codecs
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp

from deliverers.base import BODY_LIMIT

#: The most bytes read from a response: enough for `BODY_LIMIT` characters of any UTF-8 text,
#: and no more, so a huge (or endless) answer costs nothing.
MAX_BODY_BYTES = BODY_LIMIT * 4


async def read_body(response: aiohttp.ClientResponse) -> tuple[str, bool]:
    """The answer's text as far as `MAX_BODY_BYTES` bytes go, and whether that is all of it.

    Not cut to `BODY_LIMIT`: the excerpt a log keeps is `deliverers.attempt.excerpt`'s, which
    scrubs secrets before it cuts.
    """
    content = response.content
    raw = b""
    while len(raw) < MAX_BODY_BYTES and not content.at_eof():
        chunk = await content.read(MAX_BODY_BYTES - len(raw))
        if not chunk:
            break
        raw += chunk
    charset = response.charset or "utf-8"
    if content.at_eof():
        try:
            return raw.decode(charset, errors="replace"), True
        except LookupError:
            return raw.decode("utf-8", errors="replace"), True
    try:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # `final=False` drops a character cut in half by the byte limit instead of mangling it.
    return decoder.decode(raw, final=False), False


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from `now` that a `Retry-After` header asks for, at least 0; None if absent or bad.

    Both forms of RFC 9110 are understood: delta-seconds (`120`) and an HTTP-date.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0)


__all__ = ["MAX_BODY_BYTES", "parse_retry_after", "read_body"]
