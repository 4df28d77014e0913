"""the lab's settings, one document; artifact retention moves into it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:40:00.000000
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TIME = sa.DateTime(timezone=True)
_DEFAULT_KEEP_LAST = 10


def _now() -> datetime:
    # As the models write it: SQLite keeps UTC without a zone.
    now = datetime.now(UTC)
    return now.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else now


def upgrade() -> None:
    settings = op.create_table(
        "lab_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document", _JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_lab_settings_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lab_settings")),
    )
    # A retention policy someone changed becomes the settings' artifact_retention.
    row = op.get_bind().execute(sa.text("SELECT keep_last, max_age_days FROM retention_policies")).first()
    if row is not None and (row.keep_last != _DEFAULT_KEEP_LAST or row.max_age_days is not None):
        op.bulk_insert(
            settings,
            [
                {
                    "id": 1,
                    "document": {
                        "artifact_retention": {"keep_last": row.keep_last, "max_age_days": row.max_age_days}
                    },
                    "version": 1,
                    "updated_at": _now(),
                    "updated_by": None,
                }
            ],
        )
    op.drop_table("retention_policies")


def downgrade() -> None:
    policies = op.create_table(
        "retention_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=False),
        sa.Column("max_age_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", _TIME, server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_retention_policies_single_row")),
        sa.CheckConstraint("keep_last >= 1", name=op.f("ck_retention_policies_keep_last_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_policies")),
    )
    kept = {"keep_last": _DEFAULT_KEEP_LAST, "max_age_days": None}
    row = op.get_bind().execute(sa.text("SELECT document FROM lab_settings")).first()
    if row is not None:
        document = row.document if isinstance(row.document, dict) else json.loads(row.document)
        kept |= document.get("artifact_retention", {})
    op.bulk_insert(policies, [{"id": 1, **kept}])
    op.drop_table("lab_settings")
