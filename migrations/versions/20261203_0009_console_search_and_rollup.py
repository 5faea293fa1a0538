"""console: finding events by resource id, and the per-minute rollup of attempts

Additive, so that processes of the previous version keep running during a rollout:

- `ix_events_store_resource`: the events of a store by the resource id of their payload
  (`data.id`, or the top-level `id` of a delete's `{"type", "id"}` payload), newest first;
  the console's "find an event" looks them up without a scan. The only new index on a table
  that publishing writes;
- `integration_log_rollups`: one row per integration and ten minutes with attempts — the
  attempts that succeeded and failed in each of its minutes, and their durations as a sparse
  histogram — written by the workers' rollup pass (`hub.store.rollup`) from the logs, for the
  console's charts;
- `rollup_progress`: how far that pass has got;
- `ix_integration_logs_failed`: an integration's failed attempts, newest first (partial: only
  failed rows are in it, so recording a successful attempt costs nothing more). The last error
  of an integration that rarely fails, and its attempts filtered to the failed ones, were scans
  of its whole log without it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESOURCE_ID = "COALESCE(payload #>> '{data,id}', payload ->> 'id')"


def upgrade() -> None:
    op.create_index(
        "ix_events_store_resource",
        "events",
        ["store_id", sa.text(RESOURCE_ID), sa.text("created_at DESC"), sa.text("id DESC")],
        unique=False,
    )
    op.create_table(
        "integration_log_rollups",
        sa.Column("integration_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.DateTime(timezone=True), nullable=False),
        sa.Column("store_id", sa.UUID(), nullable=False),
        sa.Column("succeeded", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("failed", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("duration_sum", sa.Double(), nullable=False),
        sa.Column("durations", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_log_rollups_integration_id_integrations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["stores.id"],
            name=op.f("fk_integration_log_rollups_store_id_stores"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "integration_id", "period", name=op.f("pk_integration_log_rollups")
        ),
    )
    op.create_index(
        "ix_integration_log_rollups_store_period",
        "integration_log_rollups",
        ["store_id", "period"],
        unique=False,
    )
    op.create_index(
        "ix_integration_log_rollups_period", "integration_log_rollups", ["period"], unique=False
    )
    op.create_index(
        "ix_integration_logs_failed",
        "integration_logs",
        ["integration_id", sa.text("created_at DESC"), sa.text("id DESC")],
        unique=False,
        postgresql_where=sa.text("NOT succeeded"),
    )
    op.create_table(
        "rollup_progress",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("done_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_progress")),
    )


def downgrade() -> None:
    op.drop_table("rollup_progress")
    op.drop_index(
        "ix_integration_logs_failed",
        table_name="integration_logs",
        postgresql_where=sa.text("NOT succeeded"),
    )
    op.drop_index("ix_integration_log_rollups_period", table_name="integration_log_rollups")
    op.drop_index("ix_integration_log_rollups_store_period", table_name="integration_log_rollups")
    op.drop_table("integration_log_rollups")
    op.drop_index("ix_events_store_resource", table_name="events")
