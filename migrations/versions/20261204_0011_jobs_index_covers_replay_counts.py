"""ix_integration_jobs_integration_created carries each job's event, status and event key

The index an integration's jobs are listed by (newest first) now also holds `event_id`,
`status` and `triggered_by` (`INCLUDE`), so that a replay's confirmation counts the jobs it
would queue from the index alone: for an integration whose 41,667 jobs of a day had all
failed, the count visited 16,000 heap pages (the integration's jobs lie among every other
integration's) and took 200 ms. No new index on the table publishing writes: the same one, wider
(a status change already writes every index of the job: `status` is in
`ix_integration_jobs_integration_status`).

Built under a new name, then swapped for the old one, so that a failure leaves the old index in
place; processes of the previous version read it the same way during a rollout.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_integration_jobs_integration_created"
BUILT = "ix_integration_jobs_integration_created_new"
SWAP = (
    "ALTER INDEX ix_integration_jobs_integration_created_new"
    " RENAME TO ix_integration_jobs_integration_created"
)


def _build(include: list[str]) -> None:
    op.create_index(
        BUILT,
        "integration_jobs",
        ["integration_id", sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_include=include,
    )
    op.drop_index(NAME, table_name="integration_jobs")
    op.execute(SWAP)


def upgrade() -> None:
    _build(["event_id", "status", "triggered_by"])


def downgrade() -> None:
    _build([])
