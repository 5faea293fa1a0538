"""Secrets at rest as a use case: re-encrypting every stored secret with the current key
(`hub secrets rotate`), and checking at start that the configured keys read what is stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from deliverers.config import secret_fields
from hub.crypto import MARKER, Keyring, is_sealed_text, is_sealed_value
from hub.store import integrations as integration_store
from hub.store import vapid

BATCH = 500


@dataclass(frozen=True, slots=True)
class RotationReport:
    integrations: int
    """Integrations whose stored secrets were rewritten."""
    values: int
    """Secret values now encrypted with the first key (re-encrypted or encrypted for the first
    time)."""
    were_clear: int
    """Of those, values that had been stored in clear (written before encryption)."""
    vapid_keys: int = 0
    """Stores' VAPID private keys re-encrypted."""


def _reseal_text(keyring: Keyring, stored: str) -> tuple[str, bool]:
    if is_sealed_text(stored):
        return "enc:" + keyring.reencrypt(stored.removeprefix("enc:")), False
    return keyring.seal_text(stored), True


def _reseal_configuration(
    keyring: Keyring, stored: dict[str, Any], paths: frozenset[str], prefix: str = ""
) -> tuple[dict[str, Any], int, int]:
    """`stored` with every secret (encrypted at any depth, or in clear at one of the dotted
    `paths`) encrypted with the first key; how many values that is, how many were in clear."""
    out: dict[str, Any] = {}
    values = clear = 0
    for key, value in stored.items():
        path = prefix + key
        if is_sealed_value(value):
            out[key] = {MARKER: keyring.reencrypt(value[MARKER])}
            values += 1
        elif path in paths and isinstance(value, str):
            out[key] = {MARKER: keyring.encrypt(value)}
            values += 1
            clear += 1
        elif isinstance(value, dict):
            out[key], n, c = _reseal_configuration(keyring, value, paths, path + ".")
            values, clear = values + n, clear + c
        else:
            out[key] = value
    return out, values, clear


async def reencrypt_all(engine: AsyncEngine, keyring: Keyring) -> RotationReport:
    """Rewrite every integration's secrets (and every store's VAPID private key) encrypted with
    `keyring`'s first key.

    Values may be encrypted with any key of `keyring`, or in clear (rows from before
    encryption); each batch of rows is rewritten in its own transaction, so the command can be
    interrupted and run again. `SecretsUnreadable` if a value decrypts with no key of `keyring`.
    """
    after: UUID | None = None
    integrations = values = were_clear = 0
    while True:
        async with engine.begin() as conn:
            batch = await integration_store.stored_secrets(conn, after=after, limit=BATCH)
            for row in batch:
                configuration, n, clear = _reseal_configuration(
                    keyring, row.configuration, secret_fields(row.integration_type)
                )
                signing, was_clear = _reseal_text(keyring, row.signing_secret)
                n, clear = n + 1, clear + was_clear
                previous = row.previous_signing_secret
                if previous is not None:
                    previous, was_clear = _reseal_text(keyring, previous)
                    n, clear = n + 1, clear + was_clear
                await integration_store.rewrite_stored_secrets(
                    conn, integration_store.StoredSecrets(row.id, configuration, signing, previous)
                )
                integrations += 1
                values += n
                were_clear += clear
        if len(batch) < BATCH:
            break
        after = batch[-1].id
    vapid_keys = await _reseal_vapid_keys(engine, keyring)
    return RotationReport(integrations, values, were_clear, vapid_keys)


async def _reseal_vapid_keys(engine: AsyncEngine, keyring: Keyring) -> int:
    """Re-encrypt every store's VAPID private key with the first key; how many there were."""
    after: UUID | None = None
    count = 0
    while True:
        async with engine.begin() as conn:
            batch = await vapid.sealed_vapid_keys(conn, after=after, limit=BATCH)
            for key in batch:
                resealed, _ = _reseal_text(keyring, key.private_key)
                await vapid.rewrite_vapid_key(conn, vapid.SealedVapidKey(key.store_id, resealed))
            count += len(batch)
        if len(batch) < BATCH:
            return count
        after = batch[-1].store_id


async def check_readable(engine: AsyncEngine, keyring: Keyring) -> None:
    """`SecretsUnreadable` if the oldest or newest encrypted signing secret does not decrypt
    with `keyring`: the keys were changed without keeping the old one, and starting would fail
    reads of integrations."""
    async with engine.connect() as conn:
        samples = await integration_store.sealed_signing_secret_samples(conn)
    for sample in samples:
        keyring.open_text(sample)
