"""Web Push use cases: the store's VAPID key pair, made on first use, and its rotation.

**Rotation.** A browser's subscription is bound to the public key it was made with
(`applicationServerKey`); push services refuse a push signed by another key. Rotating makes a
new key pair at once and signs every later push with it, so each browser must subscribe again
with the new public key and the page update its integration's configuration (`PUT`); until it
does, its pushes fail (the push service answers 401 or 403) and are retried on the schedule.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from deliverers.web_push import generate_key_pair
from hub.store import vapid
from hub.store.records import VapidKeyRecord


async def vapid_key(conn: AsyncConnection, store_id: UUID) -> VapidKeyRecord:
    """The store's key pair, made now if it has none."""
    found = await vapid.get_vapid_key(conn, store_id)
    if found is not None:
        return found
    pair = generate_key_pair()
    return await vapid.add_vapid_key(
        conn, store_id, public_key=pair.public_key, private_key=pair.private_key
    )


async def rotate_vapid_key(conn: AsyncConnection, store_id: UUID) -> VapidKeyRecord:
    """A new key pair for the store, replacing the old one (see the module docstring)."""
    pair = generate_key_pair()
    return await vapid.replace_vapid_key(
        conn, store_id, public_key=pair.public_key, private_key=pair.private_key
    )
