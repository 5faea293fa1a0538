"""The integration form's map of each type's configuration, and where a problem is shown."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import BaseModel

from deliverers.config import CONFIG_MODELS, INTEGRATION_TYPES
from hub.console import forms
from hub.events import load_catalogue
from hub.store.records import IntegrationRecord


def _paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for name, info in model.model_fields.items():
        inner = info.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found |= _paths(inner, f"{prefix}{name}.")
        else:
            found.add(prefix + name)
    return found


@pytest.mark.parametrize("kind", INTEGRATION_TYPES)
def test_the_form_shows_every_configuration_field_of_each_type_and_no_other(kind: str) -> None:
    shown = {spec.path for spec in forms.CONFIG_FIELDS[kind]}
    assert shown == _paths(CONFIG_MODELS[kind])


@pytest.mark.parametrize("kind", INTEGRATION_TYPES)
def test_the_secret_fields_are_exactly_the_types_secrets(kind: str) -> None:
    secret = {spec.path for spec in forms.CONFIG_FIELDS[kind] if spec.secret}
    assert secret == set(CONFIG_MODELS[kind].SECRET_FIELDS)


@pytest.mark.parametrize(
    ("source", "kind", "where"),
    [
        ("data.name", "webhook", "name"),
        ("data.observes[3]", "webhook", "observes"),
        ("data.observes", "webhook", "observes"),
        ("data.conditions.all[0].gte", "webhook", "conditions"),
        ("data.conditions", "webhook", "conditions"),
        ("data.rate_limit", "webhook", "rate_limit"),
        ("data.configuration.url", "webhook", "webhook:url"),
        ("data.configuration.addresses[1]", "stomp", "stomp:addresses"),
        ("data.configuration.keys.auth", "web_push", "web_push:keys.auth"),
        ("data.configuration.keys", "web_push", "web_push:"),
        ("data.configuration.headers.X", "amqp", "amqp:headers"),
        ("data.configuration", "amqp", "amqp:"),
        ("data.type", "webhook", forms.OTHER),
        ("data.nonsense", "webhook", forms.OTHER),
        (None, "webhook", forms.OTHER),
    ],
)
def test_a_problem_is_shown_next_to_the_field_its_source_names(
    source: str | None, kind: str, where: str
) -> None:
    assert forms.field_for(source, kind) == where


def _record(configuration: dict[str, object], kind: str = "web_push") -> IntegrationRecord:
    now = datetime.now(UTC)
    return IntegrationRecord(
        id=uuid4(),
        store_id=uuid4(),
        name="Push",
        description=None,
        enabled=True,
        integration_type=kind,
        observes=("order.created", "wishlist.created"),
        configuration=configuration,
        signing_secret="whsec_x",
        disabled_reason=None,
        created_at=now,
        updated_at=now,
    )


def test_a_blank_nested_secret_on_an_edit_sends_its_masked_form_which_keeps_it() -> None:
    record = _record(
        {"endpoint": "https://p.example/x", "keys": {"p256dh": "P", "auth": "AUTHSECRET"}}
    )
    form = {"integration_type": "web_push", "web_push:endpoint": "https://p.example/y",
            "web_push:keys.p256dh": "P2", "web_push:keys.auth": ""}  # fmt: skip
    state = forms.FormState()

    data = forms.form_input(form, ["order.created"], record, state)

    assert data is not None
    assert data["configuration"]["keys"] == {"p256dh": "P2", "auth": "******CRET"}
    assert data["configuration"]["ttl"] is None  # blank on an edit: removed (the default)


def test_a_removed_secret_is_sent_as_null_and_a_typed_one_as_typed() -> None:
    record = _record({"url": "https://e.example/h", "secret_key": "old"}, "webhook")
    cleared = {"integration_type": "webhook", "webhook:url": "https://e.example/h",
               "webhook:secret_key": "", "webhook:secret_key!clear": "yes"}  # fmt: skip
    typed = {**cleared, "webhook:secret_key": " new "}
    del typed["webhook:secret_key!clear"]

    gone = forms.form_input(cleared, ["order.created"], record, forms.FormState())
    given = forms.form_input(typed, ["order.created"], record, forms.FormState())

    assert gone is not None
    assert given is not None
    assert gone["configuration"]["secret_key"] is None
    assert given["configuration"]["secret_key"] == " new "


def test_an_edit_shows_no_secret_and_puts_keys_beyond_the_catalogue_in_the_text_field() -> None:
    record = _record(
        {"endpoint": "https://p.example/x", "keys": {"p256dh": "P", "auth": "AUTHSECRET"}}
    )

    state = forms.state_of(record, load_catalogue())

    assert "AUTHSECRET" not in str(state.values)
    assert state.stored_secrets == {"web_push:keys.auth"}
    assert state.observes == ["order.created"]
    assert state.values[forms.OBSERVES_OTHER] == "wishlist.created"


def test_conditions_that_are_not_json_are_the_forms_own_problem() -> None:
    state = forms.FormState()

    data = forms.form_input({"conditions": "{oops", "integration_type": "webhook"}, [], None, state)

    assert data is None
    assert "not valid JSON" in state.errors["conditions"][0]
