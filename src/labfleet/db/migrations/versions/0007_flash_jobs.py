"""flash jobs; a board's known-good image; artifacts referenced by boards and flash jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ACTIVE = "status IN ('queued', 'running')"
_OLD_HOLDERS = "holder_kind IN ('environment', 'pipeline')"
_NEW_HOLDERS = "holder_kind IN ('environment', 'pipeline', 'board', 'flash-job')"


def _holders(check: str) -> None:
    # SQLite cannot alter a CHECK: the (small, index-only) table is copied by batch mode,
    # given in full so that nothing depends on reflecting its constraints.
    if op.get_bind().dialect.name == "sqlite":
        table = sa.Table(
            "artifact_references",
            sa.MetaData(),
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("artifact_id", sa.Integer(), nullable=False),
            sa.Column("holder_kind", sa.String(length=16), nullable=False),
            sa.Column("holder_id", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
            sa.CheckConstraint(check, name="ck_artifact_references_holder_kind"),
            sa.ForeignKeyConstraint(
                ["artifact_id"],
                ["artifacts.id"],
                name="fk_artifact_references_artifact_id_artifacts",
                ondelete="RESTRICT",
            ),
            sa.PrimaryKeyConstraint("id", name="pk_artifact_references"),
            sa.UniqueConstraint(
                "artifact_id",
                "holder_kind",
                "holder_id",
                name="uq_artifact_references_artifact_id_holder_kind_holder_id",
            ),
            sa.Index("ix_artifact_references_artifact_id", "artifact_id"),
            sa.Index("ix_artifact_references_holder_kind_holder_id", "holder_kind", "holder_id"),
        )
        with op.batch_alter_table("artifact_references", copy_from=table, recreate="always"):
            pass
        return
    name = op.f("ck_artifact_references_holder_kind")
    op.drop_constraint(name, "artifact_references", type_="check")
    op.create_check_constraint(name, "artifact_references", check)


def upgrade() -> None:
    _holders(_NEW_HOLDERS)
    # A plain ADD COLUMN on both backends (SQLite takes an inline REFERENCES for a column that
    # defaults to NULL): a batch copy of ``boards`` is not needed.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE boards ADD COLUMN known_good_artifact_id INTEGER "
            "CONSTRAINT fk_boards_known_good_artifact_id_artifacts "
            "REFERENCES artifacts (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("boards", sa.Column("known_good_artifact_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            "fk_boards_known_good_artifact_id_artifacts",
            "boards",
            "artifacts",
            ["known_good_artifact_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "flash_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=32), nullable=True),
        sa.Column("bytes_done", sa.BigInteger(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), nullable=False),
        sa.Column("target_version", sa.String(length=128), nullable=False),
        sa.Column("previous_status", sa.String(length=32), nullable=False),
        sa.Column("rollback_artifact_id", sa.Integer(), nullable=True),
        sa.Column("boot_check", sa.Boolean(), nullable=False),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'rolled_back')",
            name=op.f("ck_flash_jobs_status"),
        ),
        sa.CheckConstraint("mode IN ('flash', 'rollback')", name=op.f("ck_flash_jobs_mode")),
        sa.ForeignKeyConstraint(
            ["board_id"], ["boards.id"], name=op.f("fk_flash_jobs_board_id_boards"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_flash_jobs_artifact_id_artifacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["rollback_artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_flash_jobs_rollback_artifact_id_artifacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flash_jobs")),
    )
    op.create_index("ix_flash_jobs_board_history", "flash_jobs", ["board_id", "id"], unique=False)
    op.create_index("ix_flash_jobs_status_lease", "flash_jobs", ["status", "lease_expires_at"], unique=False)
    op.create_index(
        "uq_flash_jobs_active",
        "flash_jobs",
        ["board_id"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )


def downgrade() -> None:
    op.drop_index("uq_flash_jobs_active", table_name="flash_jobs")
    op.drop_index("ix_flash_jobs_status_lease", table_name="flash_jobs")
    op.drop_index("ix_flash_jobs_board_history", table_name="flash_jobs")
    op.drop_table("flash_jobs")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (>= 3.35) drops the column in place, its column-level REFERENCES with it.
        op.execute("ALTER TABLE boards DROP COLUMN known_good_artifact_id")
    else:
        op.drop_constraint("fk_boards_known_good_artifact_id_artifacts", "boards", type_="foreignkey")
        op.drop_column("boards", "known_good_artifact_id")
    op.execute("DELETE FROM artifact_references WHERE holder_kind IN ('board', 'flash-job')")
    _holders(_OLD_HOLDERS)
