"""builds and artifacts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

# As they were when this revision was written; later revisions add rows.
_BUILD_JOB_STATUSES = [
    ("queued", "Queued", "grey"),
    ("running", "Running", "blue"),
    ("succeeded", "Succeeded", "green"),
    ("failed", "Failed", "red"),
    ("cancelled", "Cancelled", "orange"),
]
_ARTIFACT_TYPES = "'kernel', 'initramfs', 'rootfs', 'dtb', 'modules', 'firmware', 'other'"


def _now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "build_job_statuses",
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("value", name=op.f("pk_build_job_statuses")),
    )
    op.bulk_insert(
        sa.table(
            "build_job_statuses",
            sa.column("value", sa.String),
            sa.column("label", sa.String),
            sa.column("colour", sa.String),
            sa.column("position", sa.Integer),
        ),
        [
            {"value": v, "label": label, "colour": c, "position": i}
            for i, (v, label, c) in enumerate(_BUILD_JOB_STATUSES)
        ],
    )

    op.create_table(
        "build_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_url", sa.String(length=1024), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("requested_commit", sa.String(length=64), nullable=True),
        sa.Column("resolved_commit", sa.String(length=64), nullable=True),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("command", sa.String(), nullable=True),
        sa.Column("defconfig", sa.String(length=255), nullable=True),
        sa.Column("make_target", sa.String(length=255), nullable=True),
        sa.Column("artifact_specs", _JSON, nullable=False),
        sa.Column("server_choice", sa.String(length=255), nullable=False),
        sa.Column("build_server_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("decision", _JSON, nullable=False),
        sa.Column("retry_of_id", sa.Integer(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("lease_owner", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        _now("queued_at"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.String(), nullable=True),
        sa.Column("log_size", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["build_server_id"],
            ["build_servers.id"],
            name=op.f("fk_build_jobs_build_server_id_build_servers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["retry_of_id"],
            ["build_jobs.id"],
            name=op.f("fk_build_jobs_retry_of_id_build_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["status"],
            ["build_job_statuses.value"],
            name=op.f("fk_build_jobs_status_build_job_statuses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build_jobs")),
    )
    with op.batch_alter_table("build_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_build_jobs_claim_order",
            ["status", sa.text("priority DESC"), "queued_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_build_jobs_lease_expiry", ["status", "lease_expires_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_build_jobs_repository_url_branch_architecture_status"),
            ["repository_url", "branch", "architecture", "status"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_build_jobs_build_server_id"), ["build_server_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_build_jobs_retry_of_id"), ["retry_of_id"], unique=False)

    op.create_table(
        "build_log_chunks",
        sa.Column("build_job_id", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_job_id"],
            ["build_jobs.id"],
            name=op.f("fk_build_log_chunks_build_job_id_build_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("build_job_id", "offset", name=op.f("pk_build_log_chunks")),
    )

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("build_job_id", sa.Integer(), nullable=True),
        sa.Column("repository_url", sa.String(length=1024), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        _now("created_at"),
        sa.CheckConstraint(f"type IN ({_ARTIFACT_TYPES})", name=op.f("ck_artifacts_type")),
        sa.ForeignKeyConstraint(
            ["build_job_id"],
            ["build_jobs.id"],
            name=op.f("fk_artifacts_build_job_id_build_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("build_job_id", "name", name=op.f("uq_artifacts_build_job_id_name")),
    )
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artifacts_repository_url_branch_architecture_created_at"),
            ["repository_url", "branch", "architecture", "created_at"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_artifacts_commit"), ["commit"], unique=False)
        batch_op.create_index(batch_op.f("ix_artifacts_sha256"), ["sha256"], unique=False)

    op.create_table(
        "artifact_references",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("holder_kind", sa.String(length=16), nullable=False),
        sa.Column("holder_id", sa.Integer(), nullable=False),
        _now("created_at"),
        sa.CheckConstraint(
            "holder_kind IN ('environment', 'pipeline')", name=op.f("ck_artifact_references_holder_kind")
        ),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.id"],
            name=op.f("fk_artifact_references_artifact_id_artifacts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_references")),
        sa.UniqueConstraint(
            "artifact_id",
            "holder_kind",
            "holder_id",
            name=op.f("uq_artifact_references_artifact_id_holder_kind_holder_id"),
        ),
    )
    with op.batch_alter_table("artifact_references", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_artifact_references_artifact_id"), ["artifact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_artifact_references_holder_kind_holder_id"),
            ["holder_kind", "holder_id"],
            unique=False,
        )

    op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("max_age_days", sa.Integer(), nullable=True),
        _now("updated_at"),
        sa.CheckConstraint("id = 1", name=op.f("ck_retention_policies_single_row")),
        sa.CheckConstraint("keep_last >= 1", name=op.f("ck_retention_policies_keep_last_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policies")),
    )
    # The default policy: the last 10 builds per repository, branch and architecture, no age limit.
    op.bulk_insert(
        sa.table(
            "retention_policies",
            sa.column("id", sa.Integer),
            sa.column("keep_last", sa.Integer),
            sa.column("max_age_days", sa.Integer),
        ),
        [{"id": 1, "keep_last": 10, "max_age_days": None}],
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
    with op.batch_alter_table("artifact_references", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_references_holder_kind_holder_id"))
        batch_op.drop_index(batch_op.f("ix_artifact_references_artifact_id"))
    op.drop_table("artifact_references")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifacts_sha256"))
        batch_op.drop_index(batch_op.f("ix_artifacts_commit"))
        batch_op.drop_index(batch_op.f("ix_artifacts_repository_url_branch_architecture_created_at"))
    op.drop_table("artifacts")
    op.drop_table("build_log_chunks")
    with op.batch_alter_table("build_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_build_jobs_retry_of_id"))
        batch_op.drop_index(batch_op.f("ix_build_jobs_build_server_id"))
        batch_op.drop_index(batch_op.f("ix_build_jobs_repository_url_branch_architecture_status"))
        batch_op.drop_index("ix_build_jobs_lease_expiry")
        batch_op.drop_index("ix_build_jobs_claim_order")
    op.drop_table("build_jobs")
    op.drop_table("build_job_statuses")
