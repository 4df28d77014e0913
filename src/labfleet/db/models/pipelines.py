"""Environments and pipelines: a deployed, booted target, and the work that builds, deploys, boots and tests.

An environment is a reserved host (a VM on it) or board with artifacts deployed and booted.
A standalone one is provisioned by a worker that claims it under a lease, like a build; one
made by a pipeline is provisioned by the pipeline's worker, in its deploy and boot stages.

A pipeline is a row a worker claims under a lease and heartbeats; its stages are rows in
strict order, each with status, timing, the resources it used and its part of the
pipeline's log (a byte range: the log is one stream, stored in chunks by offset).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, JSONType, utcnow


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# -- environments

ENV_PENDING = "pending"
ENV_PROVISIONING = "provisioning"
ENV_READY = "ready"
ENV_FAILED = "failed"
ENV_RELEASING = "releasing"
ENV_RELEASED = "released"
ENV_STATUSES = (ENV_PENDING, ENV_PROVISIONING, ENV_READY, ENV_FAILED, ENV_RELEASING, ENV_RELEASED)
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


# -- pipelines

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
PIPELINE_STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = (QUEUED, RUNNING)

PENDING = "pending"
SKIPPED = "skipped"
STAGE_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED)

PASSED = "passed"
RESULT_STATUSES = (PASSED, FAILED)


class Pipeline(Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_url: Mapped[str] = mapped_column(String(1024))
    branch: Mapped[str | None] = mapped_column(String(255), default=None)
    requested_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    resolved_commit: Mapped[str | None] = mapped_column(String(64), default=None)
    architecture: Mapped[str] = mapped_column(String(32))
    environment_type: Mapped[str] = mapped_column(String(16))
    # The whole request as validated: target, requirements, build, boot and the test plan.
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    submitted_by: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), default=None)
    build_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="SET NULL"), default=None
    )
    environment_id: Mapped[int | None] = mapped_column(default=None)
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(128), default=None)
    log_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (
        CheckConstraint(one_of("status", PIPELINE_STATUSES), name="status"),
        Index("ix_pipelines_status_lease", "status", "lease_expires_at"),
        # History and success rates by repository, branch and architecture.
        Index("ix_pipelines_history", "repository_url", "branch", "architecture", "status"),
    )


class PipelineStage(Base):
    __tablename__ = "pipeline_stages"

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempt: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(default=None)
    # What it used: {"build_job": 4, "build_server": "b1"} or {"host": ..., "environment": ...}.
    resources: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Its part of the pipeline's log, in bytes: [log_start, log_end) of its latest attempt.
    log_start: Mapped[int | None] = mapped_column(BigInteger, default=None)
    log_end: Mapped[int | None] = mapped_column(BigInteger, default=None)

    __table_args__ = (
        CheckConstraint(one_of("status", STAGE_STATUSES), name="status"),
        Index("uq_pipeline_stages_pipeline_position", "pipeline_id", "position", unique=True),
    )


class PipelineLogChunk(Base):
    __tablename__ = "pipeline_log_chunks"

    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TestResult(Base):
    """One test case of a test stage's attempt: the command, its exit status and output."""

    __tablename__ = "test_results"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("pipeline_stages.id", ondelete="CASCADE"))
    attempt: Mapped[int]
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(128))
    command: Mapped[str]
    status: Mapped[str] = mapped_column(String(16))
    exit_status: Mapped[int | None] = mapped_column(default=None)
    output: Mapped[str] = mapped_column(default="")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(one_of("status", RESULT_STATUSES), name="status"),
        Index("ix_test_results_pipeline", "pipeline_id", "attempt", "position"),
    )
