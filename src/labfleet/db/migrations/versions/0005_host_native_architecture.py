"""hosts know their native architecture; reservations keep how an ``auto`` target was chosen

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


# Plain ADD/DROP COLUMN on both backends (SQLite >= 3.35 drops a column in place): a batch
# that recreated ``reservations`` on SQLite would lose its CHECK and its partial unique index.
def upgrade() -> None:
    op.add_column("hosts", sa.Column("native_architecture", sa.String(length=32), nullable=True))
    op.add_column("reservations", sa.Column("decision", _JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("reservations", "decision")
    op.drop_column("hosts", "native_architecture")
