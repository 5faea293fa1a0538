"""The retry policy (hub/retry.py), as tables: attempt → delay, jitter bounds, cap, Retry-After."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.retry import (
    DEFAULT_SCHEDULE,
    JITTER,
    RETRY_AFTER_CAP,
    Decision,
    Fail,
    Retry,
    Succeed,
    decide,
    parse_schedule,
)

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)
ALMOST_ONE = 1 - 1e-12


def _decide(
    attempt: int,
    *,
    succeeded: bool = False,
    status_code: int | None = 500,
    retry_after: float | None = None,
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE,
    rand: float = 0.5,
) -> Decision:
    return decide(
        attempt=attempt,
        succeeded=succeeded,
        status_code=status_code,
        retry_after=retry_after,
        schedule=schedule,
        rand=lambda: rand,
    )


def _delay(decision: Decision) -> timedelta:
    assert isinstance(decision, Retry), decision
    return decision.delay


# --- parse_schedule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "schedule"),
    [
        ("0.2s,1s", (0.2 * S, 1 * S)),
        ("5m,2h", (5 * M, 2 * H)),
        ("1.5", (1.5 * S,)),
        ("", ()),
        ("   ", ()),
        ("250ms", (timedelta(milliseconds=250),)),
        ("3min", (3 * M,)),
        ("1d", (timedelta(days=1),)),
        ("0", (timedelta(0),)),
        (" 5 s , 5m ,30m", (5 * S, 5 * M, 30 * M)),
        ("5s,5m,30m,2h,5h,10h,10h", DEFAULT_SCHEDULE),
    ],
)
def test_a_schedule_text_parses_into_delays(text: str, schedule: tuple[timedelta, ...]) -> None:
    assert parse_schedule(text) == schedule


@pytest.mark.parametrize(
    "text",
    ["5x", "-1s", "1s,", ",", "1s,,2s", "abc", "s", "1 s s", "1e3", ".5s", "5 sec", "1h30m", "5S"],
)
def test_a_malformed_schedule_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="invalid retry delay"):
        parse_schedule(text)


def test_the_default_schedule_makes_eight_attempts_in_all() -> None:
    assert DEFAULT_SCHEDULE == (5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H)


# --- decide: outcomes -----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 7, 8, 100])
def test_a_successful_attempt_ends_the_job(attempt: int) -> None:
    assert _decide(attempt, succeeded=True, status_code=200) == Succeed()


@pytest.mark.parametrize("attempt", [1, 4, 8])
def test_a_410_gone_fails_the_job_at_once_and_disables_the_integration(attempt: int) -> None:
    decision = _decide(attempt, status_code=410)
    assert isinstance(decision, Fail)
    assert decision.disable_integration is True
    assert "410" in decision.reason


@pytest.mark.parametrize(
    ("attempt", "schedule", "reason"),
    [
        (8, DEFAULT_SCHEDULE, "gave up after 8 attempts"),
        (9, DEFAULT_SCHEDULE, "gave up after 9 attempts"),
        (3, parse_schedule("0.2s,1s"), "gave up after 3 attempts"),
        (1, (), "gave up after 1 attempt"),
    ],
)
def test_an_attempt_beyond_the_schedule_fails_the_job(
    attempt: int, schedule: tuple[timedelta, ...], reason: str
) -> None:
    assert _decide(attempt, schedule=schedule) == Fail(reason)


@pytest.mark.parametrize(
    "status_code", [None, 300, 301, 400, 401, 404, 408, 429, 500, 502, 503, 504]
)
def test_any_other_failure_is_retried_within_the_schedule(status_code: int | None) -> None:
    assert _decide(1, status_code=status_code) == Retry(5 * S)


# --- decide: delays and jitter --------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "base"),
    [(1, 5 * S), (2, 5 * M), (3, 30 * M), (4, 2 * H), (5, 5 * H), (6, 10 * H), (7, 10 * H)],
)
@pytest.mark.parametrize(
    ("rand", "factor"),
    [(0.0, 1 - JITTER), (0.25, 1 - JITTER / 2), (0.5, 1.0), (0.75, 1 + JITTER / 2)],
)
def test_a_retry_waits_the_scheduled_delay_with_jitter(
    attempt: int, base: timedelta, rand: float, factor: float
) -> None:
    assert _delay(_decide(attempt, rand=rand)) == base * factor


@pytest.mark.parametrize("attempt", range(1, 8))
def test_the_jitter_stays_within_twenty_percent_either_way(attempt: int) -> None:
    base = DEFAULT_SCHEDULE[attempt - 1]
    assert JITTER == 0.2
    assert _delay(_decide(attempt, rand=0.0)) == base * 0.8
    assert _delay(_decide(attempt, rand=ALMOST_ONE)).total_seconds() == pytest.approx(
        base.total_seconds() * 1.2
    )
    assert _delay(_decide(attempt, rand=ALMOST_ONE)) <= base * 1.2


# --- decide: Retry-After --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "retry_after", "delay"),
    [
        (429, 60.0, 60 * S),  # raises the 5 s delay
        (503, 60.0, 60 * S),
        (429, 1.0, 5 * S),  # never lowers it
        (503, 0.0, 5 * S),
        (429, 5.0, 5 * S),
        (429, -30.0, 5 * S),  # a negative value counts as 0
        (429, 2.5, 5 * S),
        (429, 7.5, 7.5 * S),
        (429, RETRY_AFTER_CAP.total_seconds() + 1, RETRY_AFTER_CAP),  # capped
        (503, 30 * 86400.0, RETRY_AFTER_CAP),
        (500, 60.0, 5 * S),  # only honoured with 429 and 503
        (502, 60.0, 5 * S),
        (None, 60.0, 5 * S),
        (429, None, 5 * S),
    ],
)
def test_retry_after_is_honoured_only_for_429_and_503_and_only_upwards(
    status_code: int | None, retry_after: float | None, delay: timedelta
) -> None:
    assert _delay(_decide(1, status_code=status_code, retry_after=retry_after)) == delay


def test_retry_after_is_compared_with_the_jittered_delay() -> None:
    # 10 h * 1.2 = 12 h beats a 11 h Retry-After; 10 h * 0.8 = 8 h does not.
    assert _delay(_decide(7, status_code=503, retry_after=11 * 3600.0, rand=0.0)) == 11 * H
    assert _delay(_decide(7, status_code=503, retry_after=11 * 3600.0, rand=ALMOST_ONE)) > 11 * H


def test_retry_after_does_not_extend_the_schedule() -> None:
    assert _decide(8, status_code=429, retry_after=60.0) == Fail("gave up after 8 attempts")


def test_a_410_disables_even_with_a_retry_after() -> None:
    decision = _decide(1, status_code=410, retry_after=60.0)
    assert isinstance(decision, Fail)
    assert decision.disable_integration


@pytest.mark.parametrize("retry_after", [1e20, float("inf"), float("nan")])
def test_an_absurd_retry_after_is_capped_rather_than_raising(retry_after: float) -> None:
    delay = _delay(_decide(1, status_code=429, retry_after=retry_after))
    assert 5 * S <= delay <= RETRY_AFTER_CAP


@pytest.mark.parametrize(
    ("status_code", "reason"),
    [(404, "the endpoint answered 404 Not Found"), (410, "the endpoint answered 410 Gone")],
)
def test_a_target_the_deliverer_says_is_gone_fails_at_once_and_disables(
    status_code: int, reason: str
) -> None:
    decision = decide(
        attempt=1,
        succeeded=False,
        status_code=status_code,
        retry_after=None,
        schedule=DEFAULT_SCHEDULE,
        gone=True,
    )

    assert decision == Fail(reason, disable_integration=True)


def test_a_404_that_is_not_gone_is_retried() -> None:
    assert isinstance(_decide(1, status_code=404), Retry)
