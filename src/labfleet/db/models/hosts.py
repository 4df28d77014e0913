"""QEMU/KVM hosts and the utilization history kept for their graphs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labfleet.db.base import Base, SshEndpoint, Timestamps
from labfleet.db.models.statuses import HostStatusChoice


class Host(SshEndpoint, Timestamps, Base):
    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(default="")
    libvirt_uri: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(ForeignKey("host_statuses.value"), index=True, default="online")
    utilization_threshold_pct: Mapped[int] = mapped_column(default=85)
    # Capacity and capabilities, as detected through libvirt.
    cpu_cores: Mapped[int | None] = mapped_column(default=None)
    memory_mb: Mapped[int | None] = mapped_column(default=None)
    storage_gb: Mapped[float | None] = mapped_column(default=None)
    kvm: Mapped[bool] = mapped_column(default=False)
    # The host CPU's own architecture (kernel name: x86_64, arm64, ...); KVM runs only that.
    native_architecture: Mapped[str | None] = mapped_column(String(32), default=None)
    # {"aarch64": ["virt", ...], "x86_64": ["pc", "q35", ...]}
    machine_types: Mapped[dict[str, Any]] = mapped_column(default=dict)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Health checks: failed checks in a row, and what the last one could not learn.
    check_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    last_check_error: Mapped[str | None] = mapped_column(Text, default=None)

    status_choice: Mapped[HostStatusChoice] = relationship(lazy="joined")
    labels: Mapped[list[HostLabel]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )

    __table_args__ = (Index(None, "address", unique=True),)


class HostLabel(Base):
    __tablename__ = "host_labels"

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index(None, "key", "value", "host_id"),)


class UtilizationSample(Base):
    __tablename__ = "host_utilization_samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime]
    cpu_pct: Mapped[float]
    memory_pct: Mapped[float]
    storage_pct: Mapped[float]
    running_vms: Mapped[int]

    __table_args__ = (Index(None, "host_id", "taken_at"),)
