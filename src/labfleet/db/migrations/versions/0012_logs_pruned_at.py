"""when retention removed a build's or a pipeline's log

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 21:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("build_jobs", "pipelines"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("logs_pruned_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in ("build_jobs", "pipelines"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("logs_pruned_at")
