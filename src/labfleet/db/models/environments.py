"""Environments: a deployed, booted target.

An environment is a reserved host (a VM on it) or board with artifacts deployed and booted.
A standalone one is provisioned by a worker that claims it under a lease, like a build; one
made by a pipeline is provisioned by the pipeline's worker, in its deploy and boot stages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, JSONType, one_of, utcnow
from labfleet.schemas.enums import EnvironmentStatus

ENV_PENDING = EnvironmentStatus.pending
ENV_PROVISIONING = EnvironmentStatus.provisioning
ENV_READY = EnvironmentStatus.ready
ENV_FAILED = EnvironmentStatus.failed
ENV_RELEASING = EnvironmentStatus.releasing
ENV_RELEASED = EnvironmentStatus.released
ENV_STATUSES = tuple(EnvironmentStatus)
ENV_HOLDING = (ENV_PENDING, ENV_PROVISIONING, ENV_READY, ENV_RELEASING)
"""An environment in these may hold a reservation and things on its target."""

QEMU = "qemu"
BOARD = "board"
KINDS = (QEMU, BOARD)


class Environment(Base):
    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=ENV_PENDING)
    owner: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), default=None)
    purpose: Mapped[str] = mapped_column(default="")
    architecture: Mapped[str] = mapped_column(String(32))
    # What was asked: the target ("auto" or a name), requirements, artifact choice, VM shape, boot.
    request: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    pipeline_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipelines.id", ondelete="SET NULL"), default=None, index=True
    )
    build_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="SET NULL"), default=None
    )
    # {"kernel": 12, "initramfs": 13, ...}: the artifacts deployed (referenced while held).
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), default=None, index=True)
    board_id: Mapped[int | None] = mapped_column(ForeignKey("boards.id"), default=None, index=True)
    reservation_id: Mapped[int | None] = mapped_column(ForeignKey("reservations.id"), default=None)
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    # On a host: the domain, where its files are, its console port there.
    domain_name: Mapped[str | None] = mapped_column(String(128), default=None)
    remote_dir: Mapped[str | None] = mapped_column(String(1024), default=None)
    console_port: Mapped[int | None] = mapped_column(default=None)
    console_url: Mapped[str | None] = mapped_column(String(1024), default=None)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Resources that failed to provision it: the next attempt chooses among the others.
    failed_resources: Mapped[list[str]] = mapped_column(JSONType, default=list)
    error: Mapped[str | None] = mapped_column(default=None)
    # Each step: {"step", "status", "at", ...}.
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempt: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    ready_at: Mapped[datetime | None] = mapped_column(default=None)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    release_reason: Mapped[str | None] = mapped_column(default=None)

    __table_args__ = (
        CheckConstraint(one_of("status", ENV_STATUSES), name="status"),
        CheckConstraint(one_of("kind", KINDS), name="kind"),
        Index("ix_environments_status_lease", "status", "lease_expires_at"),
    )
