"""Artifact metadata; the bytes live in the content-addressed store, named by ``sha256``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CHAR, BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from labfleet.db.base import Base, one_of, utcnow

ARTIFACT_TYPES = ("kernel", "initramfs", "rootfs", "dtb", "modules", "firmware", "other")
HOLDER_KINDS = ("environment", "pipeline", "board", "flash-job")


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(CHAR(64))
    size: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    # Kept when the build is deleted: the artifact still says where it came from.
    build_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("build_jobs.id", ondelete="SET NULL"), default=None
    )
    repository_url: Mapped[str] = mapped_column(String(1024))
    branch: Mapped[str | None] = mapped_column(String(255), default=None)
    commit: Mapped[str | None] = mapped_column(String(64), default=None)
    architecture: Mapped[str] = mapped_column(String(32))
    pinned: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    __table_args__ = (
        CheckConstraint(one_of("type", ARTIFACT_TYPES), name="type"),
        UniqueConstraint("build_job_id", "name"),
        Index(None, "repository_url", "branch", "architecture", "created_at"),
        Index(None, "commit"),
        Index(None, "sha256"),
    )


class ArtifactReference(Base):
    """An environment or pipeline using an artifact: retention never removes it while this row exists."""

    __tablename__ = "artifact_references"

    id: Mapped[int] = mapped_column(primary_key=True)
    # RESTRICT: the database itself refuses to delete an artifact that is in use (R4.4).
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="RESTRICT"), index=True)
    holder_kind: Mapped[str] = mapped_column(String(16))
    holder_id: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now())

    __table_args__ = (
        CheckConstraint(one_of("holder_kind", HOLDER_KINDS), name="holder_kind"),
        UniqueConstraint("artifact_id", "holder_kind", "holder_id"),
        Index(None, "holder_kind", "holder_id"),
    )
