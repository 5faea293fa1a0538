"""access tokens

Short-lived bearer tokens issued by `POST /oauth/access_token` for an API key. Additive only:
processes of the previous version ignore the table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("key_id", sa.UUID(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_access_tokens_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("prefix", name=op.f("uq_access_tokens_prefix")),
    )
    # The retention pass purges expired tokens through this index, oldest first.
    op.create_index("ix_access_tokens_expires_at", "access_tokens", ["expires_at"], unique=False)
    # Deleting a key (or its store) deletes its tokens without scanning the table.
    op.create_index("ix_access_tokens_key_id", "access_tokens", ["key_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_access_tokens_key_id", table_name="access_tokens")
    op.drop_index("ix_access_tokens_expires_at", table_name="access_tokens")
    op.drop_table("access_tokens")
