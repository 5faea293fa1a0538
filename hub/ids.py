"""New ids: UUIDv7, time-ordered, so that rows inserted together sort together.

They are built as asyncpg's UUID type, a C subclass of `uuid.UUID` (equal to and hashed like the
stdlib's, and what asyncpg hands back from queries anyway): about three times faster to make and
ten times faster to print than a stdlib `UUID`, which counts where a batch publish makes two
hundred ids and prints a hundred.
"""

from __future__ import annotations

from uuid import UUID

import uuid_utils
from asyncpg.pgproto.pgproto import UUID as _FastUUID


def uuid7() -> UUID:
    """A new random UUIDv7 (RFC 9562), as a `uuid.UUID`."""
    value: UUID = _FastUUID(uuid_utils.uuid7().bytes)
    return value
