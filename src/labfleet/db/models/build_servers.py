"""Build servers and the toolchains found on them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func, select
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from labfleet.db.base import Base, SshEndpoint, Timestamps
from labfleet.db.models.builds import QUEUED, RUNNING, BuildJob
from labfleet.db.models.statuses import BuildServerStatusChoice


class BuildServer(SshEndpoint, Timestamps, Base):
    __tablename__ = "build_servers"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(default="")
    status: Mapped[str] = mapped_column(
        ForeignKey("build_server_statuses.value"), index=True, default="online"
    )
    max_concurrent_builds: Mapped[int] = mapped_column(default=1)
    # Capacity, as detected at registration and refreshed by health checks.
    cpu_cores: Mapped[int | None] = mapped_column(default=None)
    memory_mb: Mapped[int | None] = mapped_column(default=None)
    disk_total_gb: Mapped[float | None] = mapped_column(default=None)
    disk_free_gb: Mapped[float | None] = mapped_column(default=None)
    load_1m: Mapped[float | None] = mapped_column(default=None)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Failed health checks in a row; at the configured limit the server goes offline (R2.3).
    check_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    last_check_error: Mapped[str | None] = mapped_column(default=None)
    # Live from its jobs whenever it is loaded (an index lookup each): never a stale copy.
    active_builds: Mapped[int] = column_property(
        select(func.count(BuildJob.id))
        .where(BuildJob.build_server_id == id, BuildJob.status == RUNNING)
        .correlate_except(BuildJob)
        .scalar_subquery()
    )
    queued_builds: Mapped[int] = column_property(
        select(func.count(BuildJob.id))
        .where(BuildJob.build_server_id == id, BuildJob.status == QUEUED)
        .correlate_except(BuildJob)
        .scalar_subquery()
    )

    status_choice: Mapped[BuildServerStatusChoice] = relationship(lazy="joined")
    labels: Mapped[list[BuildServerLabel]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )
    toolchains: Mapped[list[Toolchain]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )

    __table_args__ = (Index(None, "address", unique=True),)


class BuildServerLabel(Base):
    __tablename__ = "build_server_labels"

    build_server_id: Mapped[int] = mapped_column(
        ForeignKey("build_servers.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))

    __table_args__ = (Index(None, "key", "value", "build_server_id"),)


class Toolchain(Base):
    """A compiler found on a build server: ``aarch64-linux-gnu-gcc 12.2.0`` targets arm64."""

    __tablename__ = "toolchains"

    id: Mapped[int] = mapped_column(primary_key=True)
    build_server_id: Mapped[int] = mapped_column(
        ForeignKey("build_servers.id", ondelete="CASCADE"), index=True
    )
    compiler: Mapped[str] = mapped_column(String(16))
    target_triplet: Mapped[str] = mapped_column(String(128))
    architecture: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(1024))
