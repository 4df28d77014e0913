"""environments, pipelines, their stages, logs and test results

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 16:17:02.465996
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_url", sa.String(length=1024), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("requested_commit", sa.String(length=64), nullable=True),
        sa.Column("resolved_commit", sa.String(length=64), nullable=True),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("environment_type", sa.String(length=16), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("build_job_id", sa.Integer(), nullable=True),
        sa.Column("environment_id", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested_by", sa.String(length=128), nullable=True),
        sa.Column("log_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_pipelines_status"),
        ),
        sa.ForeignKeyConstraint(
            ["build_job_id"],
            ["build_jobs.id"],
            name=op.f("fk_pipelines_build_job_id_build_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
    )
    op.create_index(
        "ix_pipelines_history",
        "pipelines",
        ["repository_url", "branch", "architecture", "status"],
        unique=False,
    )
    op.create_index("ix_pipelines_status_lease", "pipelines", ["status", "lease_expires_at"], unique=False)

    op.create_table(
        "pipeline_log_chunks",
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_log_chunks_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline_id", "offset", name=op.f("pk_pipeline_log_chunks")),
    )
    op.create_table(
        "pipeline_stages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("resources", _JSON, nullable=False),
        sa.Column("log_start", sa.BigInteger(), nullable=True),
        sa.Column("log_end", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled')",
            name=op.f("ck_pipeline_stages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_pipeline_stages_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_stages")),
    )
    op.create_index(
        "uq_pipeline_stages_pipeline_position", "pipeline_stages", ["pipeline_id", "position"], unique=True
    )

    op.create_table(
        "test_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("command", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("exit_status", sa.Integer(), nullable=True),
        sa.Column("output", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('passed', 'failed')", name=op.f("ck_test_results_status")),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_test_results_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"],
            ["pipeline_stages.id"],
            name=op.f("fk_test_results_stage_id_pipeline_stages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_results")),
    )
    op.create_index(
        "ix_test_results_pipeline", "test_results", ["pipeline_id", "attempt", "position"], unique=False
    )

    op.create_table(
        "environments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("request", _JSON, nullable=False),
        sa.Column("pipeline_id", sa.Integer(), nullable=True),
        sa.Column("build_job_id", sa.Integer(), nullable=True),
        sa.Column("artifacts", _JSON, nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("board_id", sa.Integer(), nullable=True),
        sa.Column("reservation_id", sa.Integer(), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("domain_name", sa.String(length=128), nullable=True),
        sa.Column("remote_dir", sa.String(length=1024), nullable=True),
        sa.Column("console_port", sa.Integer(), nullable=True),
        sa.Column("console_url", sa.String(length=1024), nullable=True),
        sa.Column("decision", _JSON, nullable=True),
        sa.Column("warnings", _JSON, nullable=False),
        sa.Column("failed_resources", _JSON, nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.String(), nullable=True),
        sa.CheckConstraint("kind IN ('qemu', 'board')", name=op.f("ck_environments_kind")),
        sa.CheckConstraint(
            "status IN ('pending', 'provisioning', 'ready', 'failed', 'releasing', 'released')",
            name=op.f("ck_environments_status"),
        ),
        sa.ForeignKeyConstraint(["board_id"], ["boards.id"], name=op.f("fk_environments_board_id_boards")),
        sa.ForeignKeyConstraint(
            ["build_job_id"],
            ["build_jobs.id"],
            name=op.f("fk_environments_build_job_id_build_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_environments_host_id_hosts")),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_environments_pipeline_id_pipelines"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reservation_id"], ["reservations.id"], name=op.f("fk_environments_reservation_id_reservations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_environments")),
    )
    op.create_index(op.f("ix_environments_board_id"), "environments", ["board_id"], unique=False)
    op.create_index(op.f("ix_environments_host_id"), "environments", ["host_id"], unique=False)
    op.create_index(op.f("ix_environments_pipeline_id"), "environments", ["pipeline_id"], unique=False)
    op.create_index(
        "ix_environments_status_lease", "environments", ["status", "lease_expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_environments_status_lease", table_name="environments")
    op.drop_index(op.f("ix_environments_pipeline_id"), table_name="environments")
    op.drop_index(op.f("ix_environments_host_id"), table_name="environments")
    op.drop_index(op.f("ix_environments_board_id"), table_name="environments")

    op.drop_table("environments")
    op.drop_index("ix_test_results_pipeline", table_name="test_results")

    op.drop_table("test_results")
    op.drop_index("uq_pipeline_stages_pipeline_position", table_name="pipeline_stages")

    op.drop_table("pipeline_stages")
    op.drop_table("pipeline_log_chunks")
    op.drop_index("ix_pipelines_status_lease", table_name="pipelines")
    op.drop_index("ix_pipelines_history", table_name="pipelines")

    op.drop_table("pipelines")
