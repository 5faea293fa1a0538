"""The deliverers' kit (deliverers/attempt.py): secrets scrubbed in every spelling an endpoint
may echo them in, and answers' excerpts scrubbed before they are cut."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from deliverers.attempt import SCRUBBED, excerpt, scrub
from deliverers.base import BODY_LIMIT
from deliverers.config import mask

SECRET = 'Sé"c/r\\et 😀-7f3a'


def upper_hex(text: str) -> str:
    """`\\u00e9` → `\\u00E9`, as some encoders write it."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("\\u", i):
            out.append("\\u" + text[i + 2 : i + 6].upper())
            i += 6
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


ECHOES = {
    "as sent": SECRET,
    "JSON, UTF-8 kept": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "JSON, ASCII only": json.dumps(SECRET)[1:-1],
    "JSON, slashes escaped (PHP)": json.dumps(SECRET)[1:-1].replace("/", "\\/"),
    "JSON, upper-case hex": upper_hex(json.dumps(SECRET)[1:-1]),
    "percent-encoded": quote(SECRET, safe=""),
    "form-encoded": quote_plus(SECRET),
    "percent-encoded, lower-case hex": quote(SECRET, safe="").lower().replace("s%c3", "S%c3"),
}


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_a_secret_is_scrubbed_in_every_spelling(echo: str) -> None:
    text = f'{{"received": "{echo}", "ok": false}}'

    scrubbed = scrub(text, SECRET)

    assert scrubbed == f'{{"received": "{SCRUBBED}", "ok": false}}'


def test_a_secret_in_a_mix_of_spellings_is_scrubbed() -> None:
    mixed = 'S\\u00e9\\"c\\/r\\\\et%20%F0%9F%98%80-7f3a'

    assert scrub(f"[{mixed}]", SECRET) == f"[{SCRUBBED}]"


def test_a_masked_spelling_replaces_a_secret_shown_as_such() -> None:
    key = "AKIAHUBKITTEST000009"

    assert scrub(f"key {quote(key)}!", key, shown_as=mask) == f"key {mask(key)}!"


def test_short_secrets_are_left_alone_under_a_minimum_and_others_scrubbed() -> None:
    assert scrub("ab abc", "ab", min_length=3) == "ab abc"
    assert scrub("a secret inside a secret-x", "secret", "secret-x") == "a **** inside a ****"
    # Backslashes in a shown form stay as they are.
    assert scrub("k=abc", "abc", shown_as=lambda _s: "\\1") == "k=\\1"


def test_an_echo_straddling_the_cut_is_scrubbed_whole() -> None:
    answer = "x" * (BODY_LIMIT - 6) + SECRET + "y" * 100

    kept = excerpt(answer, SECRET)

    assert len(kept) == BODY_LIMIT
    assert kept == "x" * (BODY_LIMIT - 6) + SCRUBBED + "yy"
    assert SECRET[:3] not in kept


def test_a_cut_answer_loses_the_tail_that_could_begin_a_secret() -> None:
    # The reader stopped at its byte limit inside an echo: the rest was never read.
    read = "z" * 100 + json.dumps(SECRET)[1:12]

    kept = excerpt(read, SECRET, complete=False)

    assert kept == "z" * len(kept)
    assert len(kept) < 100
    assert excerpt(read, SECRET) == read  # complete: nothing of a secret there to scrub


def test_an_excerpt_without_secrets_is_only_cut() -> None:
    assert excerpt("a" * (BODY_LIMIT + 10)) == "a" * BODY_LIMIT
    assert excerpt("short", None, complete=False) == "short"
