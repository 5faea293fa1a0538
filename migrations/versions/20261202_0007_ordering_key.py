"""ordered delivery: integrations' ordering_key, jobs' key value and what they wait for

Additive only, so that processes of the previous version keep running during a rollout: two
nullable columns on jobs, one on integrations, and the index of the unfinished jobs of each key.
Older processes ignore them; an integration must not be given an `ordering_key` before every
process runs this version (an older worker would deliver a key's job without letting the next
one proceed).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNFINISHED = "ordering_value IS NOT NULL AND status IN ('pending', 'delivering', 'held')"


def upgrade() -> None:
    op.add_column("integrations", sa.Column("ordering_key", sa.Text(), nullable=True))
    op.add_column("integration_jobs", sa.Column("ordering_value", sa.Text(), nullable=True))
    op.add_column("integration_jobs", sa.Column("blocked_by", sa.UUID(), nullable=True))
    # Each key's queue in publish order: its tail (where a new job goes), its head (the job to
    # let proceed when one ends) and what a waiting job waits for, all without a scan.
    op.create_index(
        "ix_integration_jobs_ordering_unfinished",
        "integration_jobs",
        ["integration_id", "ordering_value", "id"],
        unique=False,
        postgresql_where=sa.text(UNFINISHED),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_integration_jobs_ordering_unfinished",
        table_name="integration_jobs",
        postgresql_where=sa.text(UNFINISHED),
    )
    op.drop_column("integration_jobs", "blocked_by")
    op.drop_column("integration_jobs", "ordering_value")
    op.drop_column("integrations", "ordering_key")
