"""Build jobs: durable rows a worker claims with a lease, and their logs kept with them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, JSONType, utcnow
from labfleet.db.models.source import FromRepository
from labfleet.schemas.enums import BuildJobStatus

# What queries compare with; build_job_statuses holds the same values.
QUEUED = BuildJobStatus.queued
RUNNING = BuildJobStatus.running
SUCCEEDED = BuildJobStatus.succeeded
FAILED = BuildJobStatus.failed
CANCELLED = BuildJobStatus.cancelled


class BuildJob(FromRepository, Base):
    __tablename__ = "build_jobs"

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-10)
    command: Mapped[str | None] = mapped_column(default=None)
    defconfig: Mapped[str | None] = mapped_column(String(255), default=None)
    make_target: Mapped[str | None] = mapped_column(String(255), default=None)
    # What to collect afterwards: [{"path": ..., "type": ..., "name": ...}, ...]
    artifact_specs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    server_choice: Mapped[str] = mapped_column(String(255), default="auto")
    build_server_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_servers.id", ondelete="SET NULL"), index=True, default=None
    )
    priority: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(ForeignKey("build_job_statuses.value"), default=QUEUED)
    # Why this server: the candidates, why each was excluded, the scores (R13.5).
    decision: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    retry_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="SET NULL"), index=True, default=None
    )
    attempt: Mapped[int] = mapped_column(default=1)
    submitted_by: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    failure_reason: Mapped[str | None] = mapped_column(default=None)
    log_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Set once retention removed the log (its size stays, as it was).
    logs_pruned_at: Mapped[datetime | None] = mapped_column(default=None)
    timeout_s: Mapped[int] = mapped_column(default=3600, server_default="3600")
    # A cancel asked for while the job runs: the worker holding it stops the remote command.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(128), default=None)
    # Where the current attempt runs on the server, and its process group ("<pgid> <start>"),
    # so that a later attempt can clean up after a worker that died mid-build.
    workspace: Mapped[str | None] = mapped_column(String(1024), default=None)
    remote_group: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        # The order in which workers claim queued jobs: highest priority, then oldest.
        Index("ix_build_jobs_claim_order", "status", priority.desc(), "queued_at", "id"),
        # Finding running jobs whose worker stopped heartbeating.
        Index("ix_build_jobs_lease_expiry", "status", "lease_expires_at"),
        # ``latest``: the newest succeeded build of a branch and architecture.
        Index(None, "repository_url", "branch", "architecture", "status"),
        # Counting a server's running builds when a worker claims a slot on it.
        Index("ix_build_jobs_server_status", "build_server_id", "status"),
    )


class BuildLogChunk(Base):
    """A piece of a job's log at a byte offset, so a reader resumes from any offset it has."""

    __tablename__ = "build_log_chunks"

    build_job_id: Mapped[int] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="CASCADE"), primary_key=True
    )
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
