"""integrations.last_success_at: the newest successful attempt, kept where a status reads it

Additive: a nullable column, moved by the statement that records attempts from now on and
backfilled here from the logs. The console's front page and an integration's status read it
with the integration's row instead of walking back through its logs for the newest success:
for an integration that has failed for a while that walk crossed every failure since (for one
that never succeeded, its whole log).

While processes of the previous version still record attempts during a rollout, the
successes they record do not move it; the next success recorded by a process of this
version does.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "integrations",
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
    )
    # One probe of ix_integration_logs_integration_created per integration.
    op.execute(
        """
        UPDATE integrations AS i
        SET last_success_at = newest.at
        FROM (
            SELECT i2.id,
                   (SELECT l.created_at FROM integration_logs AS l
                    WHERE l.integration_id = i2.id AND l.succeeded
                    ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS at
            FROM integrations AS i2
        ) AS newest
        WHERE newest.id = i.id AND newest.at IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_column("integrations", "last_success_at")
