"""Flash jobs: writing an artifact to a board as durable work, with its rollback (R6.2-6.5).

A job is a row a worker claims under a lease (``lease_owner``, ``lease_expires_at``) and
heartbeats while it writes, verifies and boots the board; its progress (phase, bytes)
and every step it took are on the row. While a job is ``queued`` or ``running`` its board
is ``flashing`` (the status it had before is in ``previous_status``); the database allows
one such job per board (a partial unique index).

``mode`` is ``flash`` for the job as asked, ``rollback`` once every attempt was used by
processes that died: the next claim then only writes the board's known-good image back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, JSONType, one_of, utcnow
from labfleet.schemas.enums import FlashJobStatus

QUEUED = FlashJobStatus.queued
RUNNING = FlashJobStatus.running
SUCCEEDED = FlashJobStatus.succeeded
FAILED = FlashJobStatus.failed
ROLLED_BACK = FlashJobStatus.rolled_back
STATUSES = tuple(FlashJobStatus)
ACTIVE = (QUEUED, RUNNING)
FINAL = (SUCCEEDED, FAILED, ROLLED_BACK)

FLASH = "flash"
ROLLBACK = "rollback"
MODES = (FLASH, ROLLBACK)


class FlashJob(Base):
    __tablename__ = "flash_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"))
    # History outlives retention of the artifact; an unfinished job's artifact is referenced
    # (artifact_references, holder ``flash-job``), so retention leaves it alone meanwhile.
    artifact_id: Mapped[int | None] = mapped_column(ForeignKey("artifacts.id", ondelete="SET NULL"))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    requested_by: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), default=None)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    mode: Mapped[str] = mapped_column(String(16), default=FLASH)
    phase: Mapped[str | None] = mapped_column(String(32), default=None)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    target_version: Mapped[str] = mapped_column(String(128))
    previous_status: Mapped[str] = mapped_column(String(32))
    # The known-good image written back when this one fails, as it was when the job began.
    rollback_artifact_id: Mapped[int | None] = mapped_column(
        ForeignKey("artifacts.id", ondelete="SET NULL"), default=None
    )
    boot_check: Mapped[bool] = mapped_column(default=True)
    lease_owner: Mapped[str | None] = mapped_column(String(255), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    attempt: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=2)
    error: Mapped[str | None] = mapped_column(default=None)
    # Each step: {"attempt", "step", "status", "at", ...}; and what the boot watch saw.
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        CheckConstraint(one_of("status", STATUSES), name="status"),
        CheckConstraint(one_of("mode", MODES), name="mode"),
        Index("ix_flash_jobs_board_history", "board_id", "id"),
        Index("ix_flash_jobs_status_lease", "status", "lease_expires_at"),
        # The database's own guard: one unfinished flash job per board, across processes.
        Index(
            "uq_flash_jobs_active",
            "board_id",
            unique=True,
            sqlite_where=text(one_of("status", ACTIVE)),
            postgresql_where=text(one_of("status", ACTIVE)),
        ),
    )
