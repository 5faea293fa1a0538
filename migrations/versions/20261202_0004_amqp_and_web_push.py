"""amqp and web_push integrations, and the stores' VAPID keys

Additive only (see README, Rolling deploys): the `integration_type` check admits two more types,
which a previous version's API never writes and its workers answer with a failed attempt
("no deliverer"), and a new table holds each store's VAPID key pair.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = "integration_type IN ('webhook', 'aws_sqs', 'stomp')"
_AFTER = "integration_type IN ('webhook', 'aws_sqs', 'stomp', 'amqp', 'web_push')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_integrations_integration_type"), "integrations", type_="check")
    op.create_check_constraint(op.f("ck_integrations_integration_type"), "integrations", _AFTER)
    op.create_table(
        "vapid_keys",
        sa.Column("store_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_vapid_keys_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("store_id", name=op.f("pk_vapid_keys")),
    )


def downgrade() -> None:
    op.drop_table("vapid_keys")
    # Integrations of the two types cannot stay under the narrower check.
    op.execute("DELETE FROM integrations WHERE integration_type IN ('amqp', 'web_push')")
    op.drop_constraint(op.f("ck_integrations_integration_type"), "integrations", type_="check")
    op.create_check_constraint(op.f("ck_integrations_integration_type"), "integrations", _BEFORE)
