"""The configurations of `amqp` and `web_push` as pure rules: one list of types for the schema
and the models, the AMQP URL's own masked form, the vhost it names, and secrets at dotted
paths."""

from __future__ import annotations

from typing import Any

import pytest

from deliverers.config import (
    CONFIG_MODELS,
    INTEGRATION_TYPES,
    amqp_vhost,
    mask_amqp_url,
    masked_configuration,
    secret_at,
    secret_fields,
    with_secret,
)
from hub import crypto
from hub.store.models import INTEGRATION_TYPES as SCHEMA_TYPES


def test_the_schema_admits_exactly_the_types_that_have_a_configuration_model() -> None:
    assert SCHEMA_TYPES == INTEGRATION_TYPES
    assert tuple(CONFIG_MODELS) == INTEGRATION_TYPES


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://user:pass@host/vhost", "amqp://user:****@host/vhost"),
        (
            "amqps://u%40x:p%3Aw@rabbit.example.com:5671/",
            "amqps://u%40x:****@rabbit.example.com:5671/",
        ),
        ("amqp://user:@host", "amqp://user:****@host"),
        ("amqp://host/v", "amqp://host/v"),
    ],
)
def test_an_amqp_url_is_masked_without_its_password(url: str, masked: str) -> None:
    assert mask_amqp_url(url) == masked
    assert CONFIG_MODELS["amqp"].mask_secret("url", url) == masked


@pytest.mark.parametrize(
    ("url", "vhost"),
    [
        ("amqp://u:p@h", "/"),
        ("amqp://u:p@h/", "/"),
        ("amqp://u:p@h/%2F", "/"),
        ("amqp://u:p@h/shop", "shop"),
    ],
)
def test_the_vhost_is_read_as_aiormq_reads_it(url: str, vhost: str) -> None:
    assert amqp_vhost(url) == vhost


def test_secrets_are_per_type_and_may_be_nested() -> None:
    assert secret_fields("amqp") == {"url"}
    assert secret_fields("webhook") == {"secret_key"}  # a webhook's url is no secret
    assert secret_fields("web_push") == {"keys.auth"}
    configuration: dict[str, Any] = {
        "endpoint": "https://p.example/x",
        "keys": {"p256dh": "B", "auth": "abcdefgh"},
    }

    assert secret_at(configuration, "keys.auth") == "abcdefgh"
    assert with_secret(configuration, "keys.auth", "x")["keys"] == {"p256dh": "B", "auth": "x"}
    assert configuration["keys"]["auth"] == "abcdefgh", "copies, not changes"
    assert masked_configuration("web_push", configuration)["keys"]["auth"] == "****efgh"


def test_a_nested_secret_is_sealed_and_opened_and_nothing_else(
    secrets_keyring: crypto.Keyring,
) -> None:
    configuration = {"endpoint": "https://p.example/x", "keys": {"p256dh": "B", "auth": "abcdefgh"}}

    sealed = crypto.seal_configuration(configuration, secret_fields("web_push"))

    assert sealed["endpoint"] == configuration["endpoint"]
    assert sealed["keys"]["p256dh"] == "B"
    assert set(sealed["keys"]["auth"]) == {"$enc"}
    assert crypto.open_configuration(sealed) == configuration
