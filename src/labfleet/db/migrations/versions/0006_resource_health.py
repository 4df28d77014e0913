"""resource health: hosts count failed checks in a row and keep the last error; board health
keeps its last error and when the one automatic power-cycle recovery was tried

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD/DROP COLUMN on both backends (SQLite >= 3.35 drops a column in place), as 0005:
# a batch that recreated ``hosts`` on SQLite would rewrite a table others reference.
def upgrade() -> None:
    op.add_column("hosts", sa.Column("check_failures", sa.Integer(), server_default="0", nullable=False))
    op.add_column("hosts", sa.Column("last_check_error", sa.Text(), nullable=True))
    op.add_column("board_health", sa.Column("last_error", sa.Text(), nullable=True))
    op.add_column(
        "board_health", sa.Column("recovery_attempted_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("board_health", "recovery_attempted_at")
    op.drop_column("board_health", "last_error")
    op.drop_column("hosts", "last_check_error")
    op.drop_column("hosts", "check_failures")
