"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 09:33:05.083786
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Status enums as they were when this revision was written; later revisions add rows.
_SERVER_STATUSES = [
    ("online", "Online", "green"),
    ("degraded", "Degraded", "orange"),
    ("offline", "Offline", "red"),
    ("maintenance", "Maintenance", "blue"),
    ("decommissioned", "Decommissioned", "grey"),
]
_BOARD_STATUSES = [
    ("online", "Online", "green"),
    ("degraded", "Degraded", "orange"),
    ("offline", "Offline", "red"),
    ("maintenance", "Maintenance", "blue"),
    ("flashing", "Flashing", "purple"),
    ("failed", "Failed", "red"),
    ("decommissioned", "Decommissioned", "grey"),
]


def _seed_statuses() -> None:
    for table, rows in (
        ("build_server_statuses", _SERVER_STATUSES),
        ("host_statuses", _SERVER_STATUSES),
        ("board_statuses", _BOARD_STATUSES),
    ):
        op.bulk_insert(
            sa.table(
                table,
                sa.column("value", sa.String),
                sa.column("label", sa.String),
                sa.column("colour", sa.String),
                sa.column("position", sa.Integer),
            ),
            [
                {"value": v, "label": label, "colour": c, "position": i}
                for i, (v, label, c) in enumerate(rows)
            ],
        )


def upgrade() -> None:

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_kind", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_state"), ["state"], unique=False)
        batch_op.create_index(
            "uq_alerts_unresolved",
            ["resource_kind", "resource_id", "kind"],
            unique=True,
            sqlite_where=sa.text("state <> 'resolved'"),
            postgresql_where=sa.text("state <> 'resolved'"),
        )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "board_statuses",
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("value", name=op.f("pk_board_statuses")),
    )
    op.create_table(
        "build_server_statuses",
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("value", name=op.f("pk_build_server_statuses")),
    )
    op.create_table(
        "host_statuses",
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("colour", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("value", name=op.f("pk_host_statuses")),
    )
    op.create_table(
        "resource_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("resource_kind", sa.String(length=16), nullable=True),
        sa.Column(
            "selector",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_resource_groups_name")),
    )
    op.create_table(
        "allocation_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_allocations", sa.Integer(), nullable=True),
        sa.Column(
            "allowed_teams",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["resource_groups.id"],
            name=op.f("fk_allocation_policies_group_id_resource_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_allocation_policies_name")),
    )
    with op.batch_alter_table("allocation_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allocation_policies_group_id"), ["group_id"], unique=False)

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("object_display", sa.String(length=255), nullable=False),
        sa.Column(
            "before",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "after",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["api_tokens.id"],
            name=op.f("fk_audit_log_token_id_api_tokens"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_log_object_type_object_id"),
            ["object_type", "object_id"],
            unique=False,
        )

    op.create_table(
        "boards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("board_type", sa.String(length=64), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("serial_number", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("console_url", sa.String(length=1024), nullable=True),
        sa.Column("ssh_address", sa.String(length=255), nullable=True),
        sa.Column("ssh_port", sa.Integer(), nullable=False),
        sa.Column("ssh_user", sa.String(length=64), nullable=True),
        sa.Column("ssh_secret", sa.String(), nullable=True),
        sa.Column("ssh_host_key", sa.String(), nullable=True),
        sa.Column("power_driver", sa.String(length=32), nullable=True),
        sa.Column(
            "power_params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("power_secret", sa.String(), nullable=True),
        sa.Column("flash_driver", sa.String(length=32), nullable=True),
        sa.Column(
            "flash_params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("flash_secret", sa.String(), nullable=True),
        sa.Column("firmware_version", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["status"],
            ["board_statuses.value"],
            name=op.f("fk_boards_status_board_statuses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_boards")),
        sa.UniqueConstraint("name", name=op.f("uq_boards_name")),
        sa.UniqueConstraint("serial_number", name=op.f("uq_boards_serial_number")),
    )
    with op.batch_alter_table("boards", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_boards_architecture"), ["architecture"], unique=False)
        batch_op.create_index(batch_op.f("ix_boards_board_type"), ["board_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_boards_status"), ["status"], unique=False)

    op.create_table(
        "build_servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("max_concurrent_builds", sa.Integer(), nullable=False),
        sa.Column("cpu_cores", sa.Integer(), nullable=True),
        sa.Column("memory_mb", sa.Integer(), nullable=True),
        sa.Column("disk_total_gb", sa.Double(), nullable=True),
        sa.Column("disk_free_gb", sa.Double(), nullable=True),
        sa.Column("load_1m", sa.Double(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("ssh_port", sa.Integer(), nullable=False),
        sa.Column("ssh_user", sa.String(length=64), nullable=False),
        sa.Column("ssh_secret", sa.String(), nullable=True),
        sa.Column("ssh_host_key", sa.String(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["status"],
            ["build_server_statuses.value"],
            name=op.f("fk_build_servers_status_build_server_statuses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_build_servers")),
        sa.UniqueConstraint("hostname", name=op.f("uq_build_servers_hostname")),
    )
    with op.batch_alter_table("build_servers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_build_servers_address"), ["address"], unique=True)
        batch_op.create_index(batch_op.f("ix_build_servers_status"), ["status"], unique=False)

    op.create_table(
        "health_thresholds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_kind", sa.String(length=16), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("warning", sa.Double(), nullable=False),
        sa.Column("critical", sa.Double(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["resource_groups.id"],
            name=op.f("fk_health_thresholds_group_id_resource_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_thresholds")),
    )
    with op.batch_alter_table("health_thresholds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_health_thresholds_resource_kind_metric_group_id"),
            ["resource_kind", "metric", "group_id"],
            unique=True,
        )

    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("libvirt_uri", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("utilization_threshold_pct", sa.Integer(), nullable=False),
        sa.Column("cpu_cores", sa.Integer(), nullable=True),
        sa.Column("memory_mb", sa.Integer(), nullable=True),
        sa.Column("storage_gb", sa.Double(), nullable=True),
        sa.Column("kvm", sa.Boolean(), nullable=False),
        sa.Column(
            "machine_types",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("ssh_port", sa.Integer(), nullable=False),
        sa.Column("ssh_user", sa.String(length=64), nullable=False),
        sa.Column("ssh_secret", sa.String(), nullable=True),
        sa.Column("ssh_host_key", sa.String(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["status"],
            ["host_statuses.value"],
            name=op.f("fk_hosts_status_host_statuses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("hostname", name=op.f("uq_hosts_hostname")),
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hosts_address"), ["address"], unique=True)
        batch_op.create_index(batch_op.f("ix_hosts_status"), ["status"], unique=False)

    op.create_table(
        "board_health",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=True),
        sa.Column("temperature_c", sa.Double(), nullable=True),
        sa.Column("power_state", sa.String(length=16), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["boards.id"],
            name=op.f("fk_board_health_board_id_boards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("board_id", name=op.f("pk_board_health")),
    )
    op.create_table(
        "board_labels",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["boards.id"],
            name=op.f("fk_board_labels_board_id_boards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("board_id", "key", name=op.f("pk_board_labels")),
    )
    with op.batch_alter_table("board_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_board_labels_key_value_board_id"),
            ["key", "value", "board_id"],
            unique=False,
        )

    op.create_table(
        "board_peripherals",
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["boards.id"],
            name=op.f("fk_board_peripherals_board_id_boards"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("board_id", "name", name=op.f("pk_board_peripherals")),
    )
    op.create_table(
        "build_server_labels",
        sa.Column("build_server_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_server_id"],
            ["build_servers.id"],
            name=op.f("fk_build_server_labels_build_server_id_build_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("build_server_id", "key", name=op.f("pk_build_server_labels")),
    )
    with op.batch_alter_table("build_server_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_build_server_labels_key_value_build_server_id"),
            ["key", "value", "build_server_id"],
            unique=False,
        )

    op.create_table(
        "host_labels",
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=63), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_host_labels_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("host_id", "key", name=op.f("pk_host_labels")),
    )
    with op.batch_alter_table("host_labels", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_host_labels_key_value_host_id"),
            ["key", "value", "host_id"],
            unique=False,
        )

    op.create_table(
        "host_utilization_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cpu_pct", sa.Double(), nullable=False),
        sa.Column("memory_pct", sa.Double(), nullable=False),
        sa.Column("storage_pct", sa.Double(), nullable=False),
        sa.Column("running_vms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_host_utilization_samples_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_utilization_samples")),
    )
    with op.batch_alter_table("host_utilization_samples", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_host_utilization_samples_host_id_taken_at"),
            ["host_id", "taken_at"],
            unique=False,
        )

    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("board_id", sa.Integer(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Double(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("release_reason", sa.String(), nullable=True),
        sa.CheckConstraint(
            "(host_id IS NULL) <> (board_id IS NULL)",
            name=op.f("ck_reservations_one_target"),
        ),
        sa.ForeignKeyConstraint(["board_id"], ["boards.id"], name=op.f("fk_reservations_board_id_boards")),
        sa.ForeignKeyConstraint(["host_id"], ["hosts.id"], name=op.f("fk_reservations_host_id_hosts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reservations_host_id"), ["host_id"], unique=False)
        batch_op.create_index(
            "uq_reservations_active_board",
            ["board_id"],
            unique=True,
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )

    op.create_table(
        "toolchains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_server_id", sa.Integer(), nullable=False),
        sa.Column("compiler", sa.String(length=16), nullable=False),
        sa.Column("target_triplet", sa.String(length=128), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_server_id"],
            ["build_servers.id"],
            name=op.f("fk_toolchains_build_server_id_build_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_toolchains")),
    )
    with op.batch_alter_table("toolchains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_toolchains_architecture"), ["architecture"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_toolchains_build_server_id"),
            ["build_server_id"],
            unique=False,
        )

    _seed_statuses()


def downgrade() -> None:

    with op.batch_alter_table("toolchains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_toolchains_build_server_id"))
        batch_op.drop_index(batch_op.f("ix_toolchains_architecture"))

    op.drop_table("toolchains")
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_reservations_active_board",
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_reservations_host_id"))

    op.drop_table("reservations")
    with op.batch_alter_table("host_utilization_samples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_utilization_samples_host_id_taken_at"))

    op.drop_table("host_utilization_samples")
    with op.batch_alter_table("host_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_host_labels_key_value_host_id"))

    op.drop_table("host_labels")
    with op.batch_alter_table("build_server_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_build_server_labels_key_value_build_server_id"))

    op.drop_table("build_server_labels")
    op.drop_table("board_peripherals")
    with op.batch_alter_table("board_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_board_labels_key_value_board_id"))

    op.drop_table("board_labels")
    op.drop_table("board_health")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosts_status"))
        batch_op.drop_index(batch_op.f("ix_hosts_address"))

    op.drop_table("hosts")
    with op.batch_alter_table("health_thresholds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_health_thresholds_resource_kind_metric_group_id"))

    op.drop_table("health_thresholds")
    with op.batch_alter_table("build_servers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_build_servers_status"))
        batch_op.drop_index(batch_op.f("ix_build_servers_address"))

    op.drop_table("build_servers")
    with op.batch_alter_table("boards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_boards_status"))
        batch_op.drop_index(batch_op.f("ix_boards_board_type"))
        batch_op.drop_index(batch_op.f("ix_boards_architecture"))

    op.drop_table("boards")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_object_type_object_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    with op.batch_alter_table("allocation_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_policies_group_id"))

    op.drop_table("allocation_policies")
    op.drop_table("resource_groups")
    op.drop_table("host_statuses")
    op.drop_table("build_server_statuses")
    op.drop_table("board_statuses")
    op.drop_table("api_tokens")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_alerts_unresolved",
            sqlite_where=sa.text("state <> 'resolved'"),
            postgresql_where=sa.text("state <> 'resolved'"),
        )
        batch_op.drop_index(batch_op.f("ix_alerts_state"))

    op.drop_table("alerts")
