"""Artifacts as the API takes and shows them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from labfleet.schemas.common import Strict


class ArtifactType(StrEnum):
    """What a build output is (R4.1)."""

    kernel = "kernel"
    initramfs = "initramfs"
    rootfs = "rootfs"
    dtb = "dtb"
    modules = "modules"
    firmware = "firmware"
    other = "other"


class ArtifactOut(BaseModel):
    id: int
    url: str
    display: str
    name: str
    type: ArtifactType
    sha256: str = Field(description="SHA-256 of the bytes; also the download's ETag.")
    size: int = Field(description="Size in bytes.")
    build_job_id: int | None
    repository_url: str
    branch: str | None
    commit: str | None
    architecture: str
    pinned: bool
    created_at: datetime
    download_url: str


class LatestOut(BaseModel):
    """The artifacts of the newest succeeded build of a branch and architecture."""

    build_job_id: int
    commit: str | None
    started_at: datetime | None
    finished_at: datetime | None
    count: int
    items: list[ArtifactOut]


class RetentionRun(Strict):
    """Overrides for one run; what is left out comes from the stored retention policy."""

    keep_last: int | None = Field(default=None, ge=1, le=100_000)
    max_age_days: int | None = Field(default=None, ge=1, le=36_500)


class RetentionOut(BaseModel):
    keep_last: int
    max_age_days: int | None
    count: int = Field(description="Number of artifacts removed.")
    items: list[ArtifactOut] = Field(description="The artifacts removed (their urls no longer answer).")
    blobs_removed: list[str] = Field(description="SHA-256 of the stored blobs freed.")
