"""The keyring (hub/crypto.py): HUB_SECRET_KEY parsing, what is encrypted and how it is marked,
decryption with any key, re-encryption with the first, and tampering detected."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub import crypto
from hub.errors import ConfigurationError, SecretsUnavailable, SecretsUnreadable

# Fixed keys: test ids must be the same in every xdist worker.
A = "Vg9j2HnqV0Yw3kQ0m8uFZ1cX5tR7pL2bN4sD6fG8hJ0="
B = "q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1c="
SECRET_FIELDS = {"secret_key", "password"}


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = crypto.install(None)
    try:
        yield
    finally:
        crypto.install(previous)


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old = crypto.Keyring.from_setting(A)
    both = crypto.Keyring.from_setting(f" {B} , {A} ,")
    sealed_by_old = old.encrypt("s3cr3t")

    assert both.size == 2
    assert both.decrypt(sealed_by_old) == "s3cr3t"
    with pytest.raises(SecretsUnreadable):
        old.decrypt(both.encrypt("s3cr3t"))  # sealed with B, the new first key


def test_reencrypting_moves_a_value_to_the_first_key() -> None:
    sealed = crypto.Keyring.from_setting(A).encrypt("s3cr3t")

    moved = crypto.Keyring.from_setting(f"{B},{A}").reencrypt(sealed)

    assert moved.startswith("v1:")
    assert crypto.Keyring.from_setting(B).decrypt(moved) == "s3cr3t"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "HUB_SECRET_KEY is empty"),
        (" , ", "HUB_SECRET_KEY is empty"),
        ("correct horse battery staple", "key #1 is not a Fernet key"),
        (f"{A},c2hvcnQ=", "key #2 is not a Fernet key"),
    ],
)
def test_a_bad_secret_key_is_named_by_position_never_echoed(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        crypto.Keyring.from_setting(value)

    assert message in str(raised.value)
    if value.strip(" ,"):
        assert value.split(",")[-1] not in str(raised.value)


def test_only_secret_fields_are_sealed_and_marked_as_objects() -> None:
    keyring = crypto.Keyring.from_setting(A)
    configuration = {"url": "https://example.com", "secret_key": "abc", "password": None}

    sealed = keyring.seal_configuration(configuration, SECRET_FIELDS)

    assert sealed["url"] == "https://example.com"
    assert sealed["password"] is None
    assert list(sealed["secret_key"]) == ["$enc"]
    assert sealed["secret_key"]["$enc"].startswith("v1:")
    assert keyring.open_configuration(sealed) == configuration


def test_text_secrets_are_prefixed_and_clear_ones_read_as_they_are() -> None:
    keyring = crypto.Keyring.from_setting(A)

    sealed = keyring.seal_text("whsec_abc")

    assert sealed.startswith("enc:v1:")
    assert keyring.open_text(sealed) == "whsec_abc"
    assert keyring.open_text("whsec_legacy") == "whsec_legacy"


def test_a_tampered_value_does_not_decrypt() -> None:
    keyring = crypto.Keyring.from_setting(A)
    sealed = keyring.encrypt("s3cr3t")
    tampered = sealed[:-6] + ("AAAAAA" if not sealed.endswith("AAAAAA") else "BBBBBB")

    with pytest.raises(SecretsUnreadable) as raised:
        keyring.decrypt(tampered)
    with pytest.raises(SecretsUnreadable):
        keyring.decrypt("v2:" + sealed[3:])

    assert "s3cr3t" not in str(raised.value)


@pytest.mark.usefixtures("no_keyring")
def test_without_a_keyring_clear_values_read_but_nothing_can_be_sealed() -> None:
    assert crypto.open_configuration({"secret_key": "legacy"}) == {"secret_key": "legacy"}
    assert crypto.open_text("whsec_legacy") == "whsec_legacy"
    assert crypto.seal_configuration({"url": "x"}, SECRET_FIELDS) == {"url": "x"}
    with pytest.raises(SecretsUnavailable):
        crypto.seal_configuration({"secret_key": "abc"}, SECRET_FIELDS)
    with pytest.raises(SecretsUnavailable):
        crypto.open_text("enc:v1:gAAAA")
