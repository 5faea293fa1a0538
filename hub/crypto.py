"""Secrets at rest: integration credentials and signing secrets are stored encrypted.

**Keys.** `HUB_SECRET_KEY` holds one or more Fernet keys (`hub secrets generate-key` prints a new
one), comma-separated. The first encrypts; every one decrypts (`MultiFernet`), so a key is rotated
by putting a new key first, keeping the old ones after it until `hub secrets rotate` has
re-encrypted every stored secret with the new key, then dropping them.

**What is encrypted.** The configuration fields that are secrets (`SECRET_FIELDS` of each
configuration model, dotted paths: webhook `secret_key`, SQS `aws_access_key_id` and
`aws_secret_access_key`, STOMP `password`, AMQP `url`, Web Push `keys.auth`), the Standard
Webhooks signing secrets (current and previous) and the stores' VAPID private keys. Fernet is
AES-128-CBC with HMAC-SHA256 (authenticated: a changed value does not decrypt), with a fresh IV
per value, so two equal secrets look different at rest.

**How it is marked.** In the `configuration` JSONB a secret field holds ``{"$enc": "v1:<token>"}``
instead of a string: an object can never come from a client (the API takes secrets as strings),
so the marker is unambiguous. Text columns hold ``"enc:v1:<token>"``; a signing secret in clear
always starts with `whsec_`. `v1` names this scheme (Fernet), leaving room for another. Values
without a marker are read as clear text: rows written before encryption keep working until
`hub secrets rotate` encrypts them.

**Where.** The store encrypts on write and decrypts on read (`hub.store.integrations`; the claim
hands the worker stored values, which it opens), so every layer above it sees clear values and the
API masks them. Which configuration fields are secrets the caller says (`secret_fields(type)`, from
the transports' configuration models), so the store knows nothing of the transports. The keyring
is process-wide, like the logging configuration: the entry points `install` it once from the
settings, so that no query needs a key parameter. Clear secrets never reach logs or errors:
`SecretsUnreadable` names no value.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub.errors import ConfigurationError, SecretsUnavailable, SecretsUnreadable

MARKER = "$enc"
"""The key of the JSON object that replaces an encrypted configuration field."""
SCHEME = "v1:"
TEXT_PREFIX = "enc:" + SCHEME
"""The prefix of an encrypted text column (signing secrets)."""


_CACHE_SIZE = 4096


def generate_key() -> str:
    """A new Fernet key (32 random bytes, URL-safe base64), as `HUB_SECRET_KEY` takes it."""
    return Fernet.generate_key().decode()


class Keyring:
    """The keys of `HUB_SECRET_KEY`: the first encrypts, all decrypt."""

    def __init__(self, keys: Iterable[str | bytes]) -> None:
        fernets = [Fernet(key) for key in keys]
        if not fernets:
            raise ConfigurationError("HUB_SECRET_KEY holds no key")
        self._fernet = MultiFernet(fernets)
        self.size = len(fernets)
        # Tokens never change and each has one plaintext, so reads of the same stored value
        # (every publish reads its targets) decrypt once. Bounded; cleared when full.
        self._opened: dict[str, str] = {}

    @classmethod
    def from_setting(cls, value: str) -> Keyring:
        """Parse `HUB_SECRET_KEY`; the error names the faulty key by position, never by value."""
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise ConfigurationError("HUB_SECRET_KEY is empty")
        for position, part in enumerate(parts, start=1):
            try:
                raw = base64.urlsafe_b64decode(part.encode())
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                raise ConfigurationError(
                    f"HUB_SECRET_KEY: key #{position} is not a Fernet key (32 bytes in URL-safe "
                    "base64); `hub secrets generate-key` prints one"
                )
        return cls(parts)

    # --- single values -------------------------------------------------------------------------

    def encrypt(self, clear: str) -> str:
        """`v1:<token>` for `clear`."""
        return SCHEME + self._fernet.encrypt(clear.encode()).decode()

    def decrypt(self, sealed: str) -> str:
        clear = self._opened.get(sealed)
        if clear is not None:
            return clear
        if not sealed.startswith(SCHEME):
            raise SecretsUnreadable("A stored secret is in an unknown encryption scheme")
        try:
            clear = self._fernet.decrypt(sealed.removeprefix(SCHEME).encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise SecretsUnreadable(
                "A stored secret cannot be decrypted with any key of HUB_SECRET_KEY (was the "
                "key replaced without keeping the old one after it?)"
            ) from None
        if len(self._opened) >= _CACHE_SIZE:
            self._opened.clear()
        self._opened[sealed] = clear
        return clear

    def reencrypt(self, sealed: str) -> str:
        """`sealed` encrypted with the first key (whichever key it was encrypted with)."""
        try:
            return SCHEME + self._fernet.rotate(sealed.removeprefix(SCHEME).encode()).decode()
        except InvalidToken:
            self.decrypt(sealed)  # raises the readable error
            raise

    # --- text columns --------------------------------------------------------------------------

    def seal_text(self, clear: str) -> str:
        return "enc:" + self.encrypt(clear)

    def open_text(self, stored: str) -> str:
        return self.decrypt(stored.removeprefix("enc:")) if is_sealed_text(stored) else stored

    # --- configurations ------------------------------------------------------------------------

    def seal_configuration(
        self, configuration: Mapping[str, Any], secret_fields: Iterable[str]
    ) -> dict[str, Any]:
        """A copy with every string at a path of `secret_fields` (dotted: `keys.auth`) replaced
        by its encrypted marker object."""
        return _sealed(configuration, frozenset(secret_fields), "", self.encrypt)

    def open_configuration(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """A copy with every encrypted marker object, at any depth, replaced by its clear
        string."""
        return {
            key: self.decrypt(value[MARKER])
            if is_sealed_value(value)
            else self.open_configuration(value)
            if isinstance(value, Mapping)
            else value
            for key, value in stored.items()
        }


def _sealed(
    configuration: Mapping[str, Any],
    paths: frozenset[str],
    prefix: str,
    encrypt: Callable[[str], str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in configuration.items():
        path = prefix + key
        if path in paths and isinstance(value, str):
            out[key] = {MARKER: encrypt(value)}
        elif isinstance(value, Mapping) and not is_sealed_value(value) and _under(path, paths):
            out[key] = _sealed(value, paths, path + ".", encrypt)
        else:
            out[key] = value
    return out


def _under(path: str, paths: frozenset[str]) -> bool:
    return any(p.startswith(path + ".") for p in paths)


def has_sealed_value(stored: Mapping[str, Any]) -> bool:
    """Whether an encrypted marker object is anywhere in a stored configuration."""
    return any(
        is_sealed_value(value) or (isinstance(value, Mapping) and has_sealed_value(value))
        for value in stored.values()
    )


def has_clear_secret(configuration: Mapping[str, Any], secret_fields: Iterable[str]) -> bool:
    """Whether a string sits at one of the dotted `secret_fields` of a configuration."""
    for path in secret_fields:
        value: Any = configuration
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return True
    return False


def is_sealed_value(value: object) -> bool:
    """Whether a configuration value is an encrypted marker object."""
    return isinstance(value, dict) and set(value) == {MARKER} and isinstance(value[MARKER], str)


def is_sealed_text(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TEXT_PREFIX)


_active: Keyring | None = None


def install(keyring: Keyring | None) -> Keyring | None:
    """Make `keyring` the process's keyring; returns the one it replaces (to restore it)."""
    global _active
    previous, _active = _active, keyring
    return previous


def installed() -> Keyring | None:
    return _active


def active() -> Keyring:
    """The installed keyring; `SecretsUnavailable` when there is none."""
    if _active is None:
        raise SecretsUnavailable(
            "HUB_SECRET_KEY is not set, so secrets cannot be encrypted or decrypted"
        )
    return _active


def open_configuration(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Decrypt a stored configuration; needs no keyring while nothing in it is encrypted."""
    if has_sealed_value(stored):
        return active().open_configuration(stored)
    return dict(stored)


def open_text(stored: str) -> str:
    """Decrypt a stored text secret; needs no keyring while it is in clear."""
    return active().open_text(stored) if is_sealed_text(stored) else stored


def seal_configuration(
    configuration: Mapping[str, Any], secret_fields: Iterable[str]
) -> dict[str, Any]:
    """Encrypt the secret fields of a configuration about to be stored."""
    names = frozenset(secret_fields)
    if not has_clear_secret(configuration, names):
        return dict(configuration)
    return active().seal_configuration(configuration, names)


def seal_text(clear: str) -> str:
    return active().seal_text(clear)
