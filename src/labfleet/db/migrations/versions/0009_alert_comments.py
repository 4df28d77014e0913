"""what people said when they acknowledged or resolved an alert

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 14:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acknowledged_comment", sa.String(), nullable=True))
        batch.add_column(sa.Column("resolved_comment", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("resolved_comment")
        batch.drop_column("acknowledged_comment")
