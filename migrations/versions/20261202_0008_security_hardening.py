"""security hardening

Additive: `events.request_digest` (nullable), the SHA-256 of an event published with a client id,
so that the id reused for another event is a 409 rather than a silent repeat; events stored
before it have none and repeat as before. And stored STOMP addresses lose any `user:password@`
they carried: the deliverer never logged in with it (`username` and `password` are the
credentials), and an address is stored and shown in clear.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The user information of a URL: from after `scheme://` to the last `@` of the authority.
_USERINFO = r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@"


def upgrade() -> None:
    op.add_column("events", sa.Column("request_digest", sa.LargeBinary(), nullable=True))
    op.execute(
        f"""
        UPDATE integrations
        SET configuration = jsonb_set(
                configuration,
                '{{addresses}}',
                (SELECT jsonb_agg(regexp_replace(a.address, '{_USERINFO}', '\\1') ORDER BY a.n)
                 FROM jsonb_array_elements_text(configuration -> 'addresses')
                      WITH ORDINALITY AS a(address, n))
            ),
            updated_at = now()
        WHERE integration_type = 'stomp'
          AND jsonb_typeof(configuration -> 'addresses') = 'array'
          AND EXISTS (
              SELECT 1 FROM jsonb_array_elements_text(configuration -> 'addresses') AS a(address)
              WHERE a.address ~ '{_USERINFO}'
          )
        """
    )


def downgrade() -> None:
    # The addresses' credentials are gone for good, as intended; they work as they are.
    op.drop_column("events", "request_digest")
