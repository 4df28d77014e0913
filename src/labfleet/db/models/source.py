"""What a build or a pipeline works from: a repository at a branch or a commit, for an
architecture; the columns both tables have."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column


class FromRepository:
    # sort_order: right after the id, where the migrations put them.
    repository_url: Mapped[str] = mapped_column(String(1024), sort_order=-9)
    branch: Mapped[str | None] = mapped_column(String(255), default=None, sort_order=-8)
    requested_commit: Mapped[str | None] = mapped_column(String(64), default=None, sort_order=-7)
    # The exact hash that was checked out and built, recorded when the build fetched it.
    resolved_commit: Mapped[str | None] = mapped_column(String(64), default=None, sort_order=-6)
    architecture: Mapped[str] = mapped_column(String(32), sort_order=-5)
