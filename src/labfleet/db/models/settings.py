"""The lab's settings: one row holding the document an admin stored, and its version.

The document holds what was set; what it does not hold takes its default when read, so a
field added by a later release needs no migration of the stored settings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, utcnow


class LabSettingsRow(Base):
    __tablename__ = "lab_settings"

    id: Mapped[int] = mapped_column(primary_key=True, default=1)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128), default=None)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
