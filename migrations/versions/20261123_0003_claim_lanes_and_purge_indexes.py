"""claim lanes and purge indexes

Additive only, so that workers of the previous version keep running during a rollout: the
previous claim index (`ix_integration_jobs_due`) stays until no worker uses it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The claim's two lanes: first attempts and retries, each in due order.
    op.create_index(
        "ix_integration_jobs_due_first",
        "integration_jobs",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND attempts = 0"),
    )
    op.create_index(
        "ix_integration_jobs_due_retry",
        "integration_jobs",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending' AND attempts > 0"),
    )
    # Deleting a job sets `retry_of` of the jobs that point at it: without this index every
    # purged job would scan the whole table.
    op.create_index(
        "ix_integration_jobs_retry_of",
        "integration_jobs",
        ["retry_of"],
        unique=False,
        postgresql_where=sa.text("retry_of IS NOT NULL"),
    )
    op.create_index("ix_events_created", "events", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_created", table_name="events")
    op.drop_index(
        "ix_integration_jobs_retry_of",
        table_name="integration_jobs",
        postgresql_where=sa.text("retry_of IS NOT NULL"),
    )
    op.drop_index(
        "ix_integration_jobs_due_retry",
        table_name="integration_jobs",
        postgresql_where=sa.text("status = 'pending' AND attempts > 0"),
    )
    op.drop_index(
        "ix_integration_jobs_due_first",
        table_name="integration_jobs",
        postgresql_where=sa.text("status = 'pending' AND attempts = 0"),
    )
