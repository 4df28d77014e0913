"""power actions: every on, off, cycle and state read of a board, recorded

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "power_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("power_state", sa.String(length=16), nullable=True),
        sa.Column("boot_seen", sa.Boolean(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("detail", _JSON, nullable=False),
        sa.CheckConstraint("action IN ('on', 'off', 'cycle', 'state')", name=op.f("ck_power_actions_action")),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_power_actions_status")
        ),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["boards.id"],
            name=op.f("fk_power_actions_board_id_boards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_power_actions")),
    )
    with op.batch_alter_table("power_actions", schema=None) as batch_op:
        batch_op.create_index("ix_power_actions_board_history", ["board_id", "id"], unique=False)
        batch_op.create_index("ix_power_actions_status_deadline", ["status", "deadline_at"], unique=False)
        batch_op.create_index(
            "uq_power_actions_running",
            ["board_id"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("power_actions", schema=None) as batch_op:
        batch_op.drop_index("uq_power_actions_running")
        batch_op.drop_index("ix_power_actions_status_deadline")
        batch_op.drop_index("ix_power_actions_board_history")
    op.drop_table("power_actions")
