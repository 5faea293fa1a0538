"""The event-key rules (hub/events.py) and the shipped catalogue (config/events.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.errors import ConfigurationError
from hub.events import (
    DEFAULT_CATALOGUE_PATH,
    EventCatalogue,
    is_valid_key,
    load_catalogue,
    match_candidates,
    matches,
    validate_observed,
    validate_published,
)


@pytest.fixture(scope="module")
def catalogue() -> EventCatalogue:
    return load_catalogue()


def _raw_keys() -> list[tuple[str, str]]:
    """(resource, key) for every key as written in the file, duplicates included."""
    document = json.loads(DEFAULT_CATALOGUE_PATH.read_text(encoding="utf-8"))
    return [(entry["resource"], key) for entry in document["resources"] for key in entry["keys"]]


# --- the shipped catalogue ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "order.created",
        "order.paid",
        "order.cancelled",
        "order.refunded",
        "cart.updated",
        "cart.deleted",
        "customer.deleted",
        "integration.created",
        "one-time-password-token-request.created",
        "subscription.canceled",
        "subscription.create-failed",
        "subscription.pending_cancel",
        "subscription-invoice.created",
        "subscription-product.updated",
        "subscription-plan.deleted",
        "product.deleted",
        "brand.created",
        "category.updated",
        "collection.deleted",
    ],
)
def test_the_catalogue_lists_eps_observable_event(catalogue: EventCatalogue, key: str) -> None:
    assert key in catalogue


@pytest.mark.parametrize(
    "key",
    [
        "cart.created",
        "order.canceled",
        "subscription.cancelled",
        "subscription-invoice.updated",
        "file.updated",
        "integration.test",
    ],
)
def test_the_catalogue_does_not_list_events_ep_never_emits(
    catalogue: EventCatalogue, key: str
) -> None:
    assert key not in catalogue


def test_every_catalogue_key_is_syntactically_valid() -> None:
    invalid = [key for _, key in _raw_keys() if not is_valid_key(key)]
    assert invalid == []


def test_every_catalogue_key_is_listed_once() -> None:
    keys = [key for _, key in _raw_keys()]
    assert len(keys) == len(set(keys))


def test_every_catalogue_key_belongs_to_the_resource_it_is_listed_under() -> None:
    misplaced = [
        (resource, key) for resource, key in _raw_keys() if not key.startswith(f"{resource}.")
    ]
    assert misplaced == []


def test_every_catalogue_entry_has_a_level_of_store_or_org() -> None:
    document = json.loads(DEFAULT_CATALOGUE_PATH.read_text(encoding="utf-8"))
    for entry in document["resources"]:
        assert entry["level"], entry["resource"]
        assert set(entry["level"]) <= {"store", "org"}, entry["resource"]


def test_the_loaded_catalogue_holds_every_key_and_resource_of_the_file(
    catalogue: EventCatalogue,
) -> None:
    raw = _raw_keys()
    assert catalogue.keys == {key for _, key in raw}
    assert catalogue.resources == {resource for resource, _ in raw}


def test_the_default_catalogue_is_loaded_once() -> None:
    assert load_catalogue() is load_catalogue()


def test_a_catalogue_can_be_loaded_from_another_path(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"version": 1, "resources": [{"resource": "a", "keys": ["a.b"]}]}))
    assert load_catalogue(path) == EventCatalogue(
        keys=frozenset({"a.b"}), resources=frozenset({"a"})
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "cannot read"),
        (json.dumps([]), "expected"),
        (json.dumps({"version": 2, "resources": []}), "expected"),
        (json.dumps({"version": 1, "resources": {}}), "must be an array"),
        (json.dumps({"version": 1, "resources": ["order"]}), "must be an object"),
        (json.dumps({"version": 1, "resources": [{"resource": "Order", "keys": []}]}), "invalid"),
        (json.dumps({"version": 1, "resources": [{"resource": "order", "keys": []}]}), "non-empty"),
        (
            json.dumps({"version": 1, "resources": [{"resource": "order", "keys": ["order.X"]}]}),
            "invalid key",
        ),
        (
            json.dumps({"version": 1, "resources": [{"resource": "order", "keys": ["cart.a"]}]}),
            "does not belong",
        ),
        (
            json.dumps(
                {"version": 1, "resources": [{"resource": "order", "keys": ["order.a", "order.a"]}]}
            ),
            "listed twice",
        ),
        (
            json.dumps(
                {
                    "version": 1,
                    "resources": [
                        {"resource": "order", "keys": ["order.a"]},
                        {"resource": "order", "keys": ["order.b"]},
                    ],
                }
            ),
            "listed twice",
        ),
    ],
)
def test_a_malformed_catalogue_is_a_configuration_error(
    tmp_path: Path, document: str, problem: str
) -> None:
    path = tmp_path / "events.json"
    path.write_text(document)
    with pytest.raises(ConfigurationError, match=problem):
        load_catalogue(path)


def test_a_missing_catalogue_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_catalogue(tmp_path / "absent.json")


# --- observes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "order.paid",
        "cart.updated",
        "subscription.pending_pause",
        "subscription.create-failed",
        "*",
        "order.*",
        "subscription-plan.*",
        "wishlist_ext.*",
        "wishlist_ext.created",
        "wishlist_ext.updated",
        "wishlist_ext.deleted",
        "cart.created",
        "9lives.created",
        "a.created",
        "x" * 120 + ".deleted",
        "x" * 126 + ".*",
    ],
)
def test_observes_accepts_catalogue_custom_and_wildcard_keys(
    catalogue: EventCatalogue, key: str
) -> None:
    assert validate_observed(key, catalogue) is None


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (
            "order.exploded",
            "'order.exploded' is not an observable event: not in the catalogue and not a custom"
            " <name>.created|updated|deleted key",
        ),
        ("wishlist_ext.archived", "is not an observable event"),
        ("integration.test", "is not an observable event"),
        ("Order.Created", "is not a valid event key"),
        ("order", "is not a valid event key"),
        ("order.", "is not a valid event key"),
        (".created", "is not a valid event key"),
        ("", "is not a valid event key"),
        ("order.paid.now", "is not a valid event key"),
        ("order.*.x", "is not a valid event key"),
        ("order..paid", "is not a valid event key"),
        ("order paid", "is not a valid event key"),
        (" order.paid", "is not a valid event key"),
        ("order.paid\n", "is not a valid event key"),
        ("-order.created", "is not a valid event key"),
        ("_order.created", "is not a valid event key"),
        ("x" * 121 + ".deleted", "is not a valid event key"),
        ("*.*", "is not a valid wildcard"),
        ("*.created", "is not a valid event key"),
        ("order.pa*", "is not a valid event key"),
        (".*", "is not a valid wildcard"),
        ("Order.*", "is not a valid wildcard"),
        ("x" * 127 + ".*", "is not a valid wildcard"),
        ("**", "is not a valid event key"),
    ],
)
def test_observes_rejects_other_keys_with_a_reason(
    catalogue: EventCatalogue, key: str, reason: str
) -> None:
    message = validate_observed(key, catalogue)
    assert message is not None
    assert reason in message


def test_a_rejection_reason_quotes_a_huge_key_only_in_part(catalogue: EventCatalogue) -> None:
    message = validate_observed("x" * 10_000, catalogue)
    assert message is not None
    assert len(message) < 500


# --- triggered_by ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "order.paid",
        "subscription.canceled",
        "product.deleted",
        "integration.test",
        "wishlist_ext.created",
        "cart.created",
    ],
)
def test_publishing_accepts_catalogue_custom_and_test_keys(
    catalogue: EventCatalogue, key: str
) -> None:
    assert validate_published(key, catalogue) is None


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("*", "is a wildcard"),
        ("order.*", "is a wildcard"),
        ("wishlist_ext.*", "is a wildcard"),
        ("order.exploded", "cannot be published"),
        ("integration.tested", "cannot be published"),
        ("Order.Paid", "is not a valid event key"),
        ("order", "is not a valid event key"),
        ("", "is not a valid event key"),
        ("order.paid.now", "is not a valid event key"),
    ],
)
def test_publishing_rejects_wildcards_and_unknown_keys_with_a_reason(
    catalogue: EventCatalogue, key: str, reason: str
) -> None:
    message = validate_published(key, catalogue)
    assert message is not None
    assert reason in message


# --- matching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "candidates"),
    [
        ("order.paid", ("order.paid", "order.*", "*")),
        ("subscription-plan.created", ("subscription-plan.created", "subscription-plan.*", "*")),
        ("wishlist_ext.deleted", ("wishlist_ext.deleted", "wishlist_ext.*", "*")),
        ("integration.test", ("integration.test", "integration.*", "*")),
    ],
)
def test_the_candidates_of_a_key_are_the_key_its_resource_wildcard_and_star(
    key: str, candidates: tuple[str, ...]
) -> None:
    assert match_candidates(key) == candidates


@pytest.mark.parametrize("key", ["*", "order.*", "order", "", "Order.Paid", "a.b.c"])
def test_only_a_concrete_key_has_candidates(key: str) -> None:
    with pytest.raises(ValueError, match="is not a concrete event key"):
        match_candidates(key)


@pytest.mark.parametrize(
    ("observes", "key", "expected"),
    [
        (["order.paid"], "order.paid", True),
        (["order.*"], "order.paid", True),
        (["*"], "order.paid", True),
        (["cart.updated", "order.paid"], "order.paid", True),
        (["order.created"], "order.paid", False),
        (["cart.*"], "order.paid", False),
        ([], "order.paid", False),
        (["order"], "order.paid", False),
        (["order.p*"], "order.paid", False),
        (["*.paid"], "order.paid", False),
        (["subscription.*"], "subscription-plan.created", False),
        (["subscription-plan.*"], "subscription.created", False),
        (["account.*"], "account-member.created", False),
        (["ORDER.PAID"], "order.paid", False),
    ],
)
def test_an_integration_receives_an_event_only_when_it_observes_a_candidate(
    observes: list[str], key: str, expected: bool
) -> None:
    assert matches(observes, key) is expected


def test_matching_accepts_any_iterable_of_observes() -> None:
    assert matches(iter(["order.*"]), "order.paid")
    assert matches(frozenset({"*"}), "order.paid")
    assert matches(("order.paid",), "order.paid")


@pytest.mark.parametrize("observes", ["order.paid", "order.*", "*", "cart.*", "cart.updated"])
@pytest.mark.parametrize("key", ["order.paid", "cart.updated", "wishlist_ext.created"])
def test_matching_agrees_with_the_candidate_set(observes: str, key: str) -> None:
    assert matches([observes], key) is (observes in match_candidates(key))
