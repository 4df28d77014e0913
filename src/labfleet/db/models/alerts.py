"""Alerts about resources, de-duplicated per resource and kind."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, utcnow


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_kind: Mapped[str] = mapped_column(String(16))
    resource_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str]
    state: Mapped[str] = mapped_column(String(16), default="open", index=True)
    occurrences: Mapped[int] = mapped_column(default=1)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_comment: Mapped[str | None] = mapped_column(default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(128), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_comment: Mapped[str | None] = mapped_column(default=None)

    __table_args__ = (
        # One unresolved alert per resource and kind; a repeat bumps its occurrences.
        Index(
            "uq_alerts_unresolved",
            "resource_kind",
            "resource_id",
            "kind",
            unique=True,
            sqlite_where=text("state <> 'resolved'"),
            postgresql_where=text("state <> 'resolved'"),
        ),
    )
