"""The publish answer's hand-built document is exactly the documented `EventOut` schema's."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from hub.api.schemas import event_out, published_event
from hub.store.records import EventRecord


@pytest.mark.parametrize("client_id", [None, "order-1"])
def test_published_event_equals_the_event_schemas_rendering(client_id: str | None) -> None:
    record = EventRecord(
        id=UUID("01937b3c-0000-7000-8000-000000000001"),
        store_id=UUID("01937b3c-0000-7000-8000-000000000002"),
        client_id=client_id,
        triggered_by="order.created",
        payload={"data": {"id": "1", "items": [1, 2.5, None, True], "name": "é"}},
        created_at=datetime(2026, 11, 23, 7, 48, 1, 123456, tzinfo=UTC),
    )
    base = "http://hub.example"

    fast = published_event(base, record, jobs_total=3)

    assert fast == event_out(base, record, jobs_total=3).model_dump(mode="json")
    assert list(fast) == list(event_out(base, record, jobs_total=3).model_dump(mode="json"))
