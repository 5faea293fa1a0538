"""Operational events, pure (`hub.operational`): their payloads, client ids and the no-loop rule,
and how the event-key rules treat their keys (`hub.events`)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from hub.events import (
    OPERATIONAL_KEYS,
    load_catalogue,
    match_candidates,
    matches,
    observable_keys,
    validate_observed,
    validate_published,
)
from hub.operational import (
    BODY_EXCERPT,
    DETAIL_EXCERPT,
    Cause,
    FailedJob,
    Subject,
    emits_job_failed,
    excerpt,
    integration_disabled,
    integration_enabled,
    job_failed,
    timestamp,
)

STORE = UUID("01900000-0000-7000-8000-000000000001")
SUBJECT = Subject(
    UUID("01900000-0000-7000-8000-0000000000a1"), STORE, "Orders to the ERP", "webhook"
)
AT = datetime(2026, 12, 2, 10, 0, 1, 234567, tzinfo=UTC)


def failed(**changes: object) -> FailedJob:
    values: dict[str, object] = {
        "id": UUID("01900000-0000-7000-8000-0000000000b1"),
        "event_id": UUID("01900000-0000-7000-8000-0000000000c1"),
        "triggered_by": "order.paid",
        "attempts": 8,
        "integration": SUBJECT,
        "reason": "gave up after 8 attempts",
        "status_code": 503,
        "error_detail": "Received a status code outside of 2xx range - treating webhook as a fail",
        "body": "down for maintenance",
        "processing_time": 0.125,
    }
    values.update(changes)
    return FailedJob(**values)  # type: ignore[arg-type]


def test_job_failed_names_the_job_its_event_its_integration_and_its_last_attempt() -> None:
    event = job_failed(failed(), at=AT)

    assert event.store_id == STORE
    assert event.triggered_by == "job.failed"
    assert event.client_id == "hub:job.failed:01900000-0000-7000-8000-0000000000b1"
    assert event.payload == {
        "data": {
            "type": "integration-job",
            "id": "01900000-0000-7000-8000-0000000000b1",
            "status": "failed",
            "triggered_by": "order.paid",
            "attempts": 8,
            "reason": "gave up after 8 attempts",
            "failed_at": "2026-12-02T10:00:01.234Z",
            "last_attempt": {
                "status_code": 503,
                "error_detail": (
                    "Received a status code outside of 2xx range - treating webhook as a fail"
                ),
                "body": "down for maintenance",
                "processing_time": 0.125,
            },
            "integration": {
                "type": "integration",
                "id": "01900000-0000-7000-8000-0000000000a1",
                "name": "Orders to the ERP",
                "integration_type": "webhook",
            },
            "event": {
                "type": "event",
                "id": "01900000-0000-7000-8000-0000000000c1",
                "triggered_by": "order.paid",
            },
        }
    }


def test_job_failed_carries_only_an_excerpt_of_a_long_answer_and_error() -> None:
    event = job_failed(failed(body="b" * 10_000, error_detail="e" * 5_000), at=AT)

    last = event.payload["data"]["last_attempt"]
    assert len(last["body"]) == BODY_EXCERPT
    assert last["body"].endswith("…")
    assert len(last["error_detail"]) == DETAIL_EXCERPT
    assert last["error_detail"].endswith("…")


def test_job_failed_without_an_http_answer_has_nulls_where_there_is_nothing() -> None:
    event = job_failed(
        failed(status_code=None, body=None, error_detail="Connection refused"), at=AT
    )

    last = event.payload["data"]["last_attempt"]
    assert (last["status_code"], last["body"], last["error_detail"]) == (
        None,
        None,
        "Connection refused",
    )


@pytest.mark.parametrize(
    ("text", "limit", "cut"),
    [(None, 5, None), ("", 5, ""), ("abcde", 5, "abcde"), ("abcdef", 5, "abcd…")],
)
def test_an_excerpt_is_cut_to_its_limit_with_an_ellipsis(
    text: str | None, limit: int, cut: str | None
) -> None:
    assert excerpt(text, limit) == cut


@pytest.mark.parametrize("cause", list(Cause))
def test_integration_disabled_says_why_and_when_and_names_the_change(cause: Cause) -> None:
    key = UUID("01900000-0000-7000-8000-0000000000d1") if cause is Cause.OPERATOR else None

    event = integration_disabled(SUBJECT, cause=cause, reason="because", at=AT, key_id=key)

    assert event.triggered_by == "integration.disabled"
    assert event.client_id == (
        "hub:integration.disabled:01900000-0000-7000-8000-0000000000a1:20261202T100001.234567Z"
    )
    assert event.payload == {
        "data": {
            "type": "integration",
            "id": "01900000-0000-7000-8000-0000000000a1",
            "name": "Orders to the ERP",
            "integration_type": "webhook",
            "enabled": False,
            "cause": cause.value,
            "reason": "because",
            "key_id": None if key is None else str(key),
            "disabled_at": "2026-12-02T10:00:01.234Z",
        }
    }


def test_two_switches_of_one_integration_have_two_client_ids() -> None:
    later = AT.replace(microsecond=AT.microsecond + 1)
    first = integration_disabled(SUBJECT, cause=Cause.GONE, reason="410", at=AT)
    second = integration_disabled(SUBJECT, cause=Cause.GONE, reason="410", at=later)
    enabled = integration_enabled(SUBJECT, reason="back", at=AT, key_id=None, resumed_jobs=0)

    assert len({first.client_id, second.client_id, enabled.client_id}) == 3


def test_integration_enabled_counts_the_held_jobs_it_resumed() -> None:
    event = integration_enabled(SUBJECT, reason="fixed", at=AT, key_id=None, resumed_jobs=7)

    assert event.triggered_by == "integration.enabled"
    data = event.payload["data"]
    assert (data["enabled"], data["cause"], data["resumed_jobs"]) == (True, "operator", 7)
    assert data["enabled_at"] == "2026-12-02T10:00:01.234Z"


@pytest.mark.parametrize(
    ("key", "emits"),
    [
        ("order.created", True),
        ("integration.test", True),
        ("integration.updated", True),
        ("job.failed", False),
        ("integration.disabled", False),
        ("integration.enabled", False),
    ],
)
def test_only_jobs_of_events_that_are_not_operational_publish_job_failed(
    key: str, emits: bool
) -> None:
    assert emits_job_failed(key) is emits


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    assert timestamp(AT) == "2026-12-02T10:00:01.234Z"


# --- the keys' rules ----------------------------------------------------------------------------

CATALOGUE = load_catalogue()


@pytest.mark.parametrize("key", sorted(OPERATIONAL_KEYS))
def test_an_operational_key_is_observable_but_not_publishable(key: str) -> None:
    assert validate_observed(key, CATALOGUE) is None
    reason = validate_published(key, CATALOGUE)
    assert reason is not None
    assert "only the hub publishes it" in reason
    assert key in observable_keys(CATALOGUE)


@pytest.mark.parametrize(
    ("observes", "key", "selected"),
    [
        (["job.failed"], "job.failed", True),
        (["job.*"], "job.failed", True),
        (["integration.*"], "integration.disabled", True),
        (["*"], "job.failed", False),
        (["*"], "integration.enabled", False),
        (["*"], "integration.created", True),
        (["integration.disabled"], "integration.enabled", False),
    ],
)
def test_operational_events_are_selected_by_name_or_resource_never_by_the_catch_all(
    observes: list[str], key: str, selected: bool
) -> None:
    assert matches(observes, key) is selected


def test_the_candidates_of_an_operational_key_leave_out_the_catch_all() -> None:
    assert match_candidates("job.failed") == ("job.failed", "job.*")
    assert match_candidates("order.paid") == ("order.paid", "order.*", "*")
