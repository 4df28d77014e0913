"""Power actions: every on, off, cycle and state read of a board, with who asked and how it ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, JSONType, one_of, utcnow
from labfleet.schemas.enums import PowerActionStatus

ON = "on"
OFF = "off"
CYCLE = "cycle"
STATE = "state"
ACTIONS = (ON, OFF, CYCLE, STATE)

RUNNING = PowerActionStatus.running
SUCCEEDED = PowerActionStatus.succeeded
FAILED = PowerActionStatus.failed
STATUSES = tuple(PowerActionStatus)


class PowerAction(Base):
    """One power action on one board.

    A row is written ``running`` before the device is touched and finished with its
    result; ``deadline_at`` is when it must have finished by, so that a row whose process
    died is failed with the reason instead of staying ``running`` (see services/power/service.py).
    """

    __tablename__ = "power_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    board_id: Mapped[int] = mapped_column(ForeignKey("boards.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    requested_by: Mapped[str] = mapped_column(String(128))
    team: Mapped[str | None] = mapped_column(String(128), default=None)
    # The labfleet process that runs it (hostname:pid), to tell whose a running row is.
    holder: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_s: Mapped[float | None] = mapped_column(default=None)
    # Cycles: how many off/on rounds ran, and how many were allowed.
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    # The state read (``state``) or switched to (``on``, ``off``, ``cycle``): on, off, unknown.
    power_state: Mapped[str | None] = mapped_column(String(16), default=None)
    # Cycles: whether the boot pattern appeared on the console (None: nobody watched).
    boot_seen: Mapped[bool | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(default=None)
    # How it went: each attempt of a cycle, the pattern watched for, the timings used.
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        CheckConstraint(one_of("action", ACTIONS), name="action"),
        CheckConstraint(one_of("status", STATUSES), name="status"),
        # A board's history, newest first.
        Index("ix_power_actions_board_history", "board_id", "id"),
        # Finding running actions past their deadline.
        Index("ix_power_actions_status_deadline", "status", "deadline_at"),
        # The database's own guard: one running power action per board, across processes.
        Index(
            "uq_power_actions_running",
            "board_id",
            unique=True,
            sqlite_where=text(f"status = '{RUNNING}'"),
            postgresql_where=text(f"status = '{RUNNING}'"),
        ),
    )
