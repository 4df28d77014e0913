"""Groups, policies, health thresholds and reservations: who may use what, and how much."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, Timestamps, utcnow


class ResourceGroup(Timestamps, Base):
    """Resources that share a purpose, chosen by a label selector."""

    __tablename__ = "resource_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    purpose: Mapped[str] = mapped_column(default="")
    resource_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    selector: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AllocationPolicy(Timestamps, Base):
    __tablename__ = "allocation_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource_groups.id", ondelete="CASCADE"), default=None, index=True
    )
    max_concurrent_allocations: Mapped[int | None] = mapped_column(default=None)
    allowed_teams: Mapped[list[str]] = mapped_column(default=list)
    priority: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)


class HealthThreshold(Timestamps, Base):
    """Warning and critical levels of one metric, lab-wide or for one group."""

    __tablename__ = "health_thresholds"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_kind: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(64))
    warning: Mapped[float]
    critical: Mapped[float]
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource_groups.id", ondelete="CASCADE"), default=None
    )

    __table_args__ = (Index(None, "resource_kind", "metric", "group_id", unique=True),)


class Reservation(Base):
    """Capacity of a host, or a whole board, held for an owner until release or expiry."""

    __tablename__ = "reservations"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), default=None, index=True)
    board_id: Mapped[int | None] = mapped_column(ForeignKey("boards.id"), default=None)
    owner: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), default=None)
    purpose: Mapped[str] = mapped_column(default="")
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    disk_gb: Mapped[float] = mapped_column(default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    release_reason: Mapped[str | None] = mapped_column(default=None)
    # How an ``auto`` target was chosen (candidates, exclusions, scores); None when pinned.
    decision: Mapped[dict[str, Any] | None] = mapped_column(default=None)

    __table_args__ = (
        CheckConstraint("(host_id IS NULL) <> (board_id IS NULL)", name="one_target"),
        # A board has at most one holder: enforced by the database itself.
        Index(
            "uq_reservations_active_board",
            "board_id",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )
