"""processes and console sessions

The process registry (`hub_processes`: every `hub serve` and `hub worker` heartbeats its row),
console sessions that every API process accepts and that survive restarts (`console_sessions`,
keyed by the SHA-256 of the session id), and the index that counts held jobs for the status.
Additive only: processes of the previous version ignore all three.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_processes",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("jobs_in_flight", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint(
            "role IN ('api', 'worker', 'api+worker')", name=op.f("ck_hub_processes_role")
        ),
        sa.CheckConstraint(
            "jobs_in_flight >= 0", name=op.f("ck_hub_processes_jobs_in_flight_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_processes")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.UUID(), nullable=False),
        sa.Column("store_id", sa.UUID(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("csrf", sa.Text(), nullable=False),
        sa.Column(
            "flash",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_console_sessions_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_console_sessions_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_console_sessions")),
    )
    op.create_index("ix_console_sessions_key_created", "console_sessions", ["key_id", "created_at"])
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])
    # The status counts held jobs; no other index has `held` leading or in its predicate.
    op.create_index(
        "ix_integration_jobs_held",
        "integration_jobs",
        ["integration_id"],
        unique=False,
        postgresql_where=sa.text("status = 'held'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_integration_jobs_held",
        table_name="integration_jobs",
        postgresql_where=sa.text("status = 'held'"),
    )
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_index("ix_console_sessions_key_created", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("hub_processes")
