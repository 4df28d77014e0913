"""build execution: cancel requests, remote process groups, timeouts; build server check failures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("build_jobs") as batch:
        batch.add_column(sa.Column("timeout_s", sa.Integer(), server_default="3600", nullable=False))
        batch.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancel_requested_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("workspace", sa.String(length=1024), nullable=True))
        batch.add_column(sa.Column("remote_group", sa.String(length=64), nullable=True))
        batch.create_index("ix_build_jobs_server_status", ["build_server_id", "status"])
    with op.batch_alter_table("build_servers") as batch:
        batch.add_column(sa.Column("check_failures", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("last_check_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("build_servers") as batch:
        batch.drop_column("last_check_error")
        batch.drop_column("check_failures")
    with op.batch_alter_table("build_jobs") as batch:
        batch.drop_index("ix_build_jobs_server_status")
        batch.drop_column("remote_group")
        batch.drop_column("workspace")
        batch.drop_column("cancel_requested_by")
        batch.drop_column("cancel_requested_at")
        batch.drop_column("timeout_s")
