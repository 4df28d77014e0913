"""Pipelines: the work that builds, deploys, boots and tests.

A pipeline is a row a worker claims under a lease and heartbeats; its stages are rows in
strict order, each with status, timing, the resources it used and its part of the
pipeline's log (a byte range: the log is one stream, stored in chunks by offset).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, LargeBinary, String, func
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, JSONType, one_of, utcnow
from labfleet.db.models.source import FromRepository
from labfleet.schemas.enums import PipelineStatus, StageStatus, TestResultStatus

# A pipeline's, a stage's and a test result's statuses share values (running, failed, ...):
# the names below serve all three.
QUEUED = PipelineStatus.queued
RUNNING = PipelineStatus.running
SUCCEEDED = PipelineStatus.succeeded
FAILED = PipelineStatus.failed
CANCELLED = PipelineStatus.cancelled
PIPELINE_STATUSES = tuple(PipelineStatus)
ACTIVE = (QUEUED, RUNNING)

PENDING = StageStatus.pending
SKIPPED = StageStatus.skipped
STAGE_STATUSES = tuple(StageStatus)

PASSED = TestResultStatus.passed
RESULT_STATUSES = tuple(TestResultStatus)


class Pipeline(FromRepository, Base):
    __tablename__ = "pipelines"

    id: Mapped[int] = mapped_column(primary_key=True, sort_order=-10)
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
    # Set once retention removed the log (its size stays, as it was).
    logs_pruned_at: Mapped[datetime | None] = mapped_column(default=None)

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
