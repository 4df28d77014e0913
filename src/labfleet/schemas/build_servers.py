"""Build servers as the API accepts and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from labfleet.schemas.common import StatusOut, Strict
from labfleet.schemas.enums import ServerStatus
from labfleet.schemas.ssh import MachineCreate, MachineOut, MachineUpdate


class BuildServerCreate(MachineCreate):
    max_concurrent_builds: int = Field(default=1, ge=1, le=1024)


class BuildServerUpdate(MachineUpdate):
    max_concurrent_builds: int | None = Field(default=None, ge=1, le=1024)


class ToolchainOut(BaseModel):
    compiler: str
    target_triplet: str
    architecture: str
    version: str
    path: str


class BuildServerOut(MachineOut):
    description: str
    status: StatusOut
    max_concurrent_builds: int
    cpu_cores: int | None
    memory_mb: int | None
    disk_total_gb: float | None
    disk_free_gb: float | None
    load_1m: float | None
    toolchains: list[ToolchainOut]
    labels: dict[str, str]
    checked_at: datetime | None
    active_builds: int = Field(description="Builds running on it now.")
    queued_builds: int = Field(description="Builds placed on it, waiting for a slot.")
    check_failures: int = Field(description="Failed health checks in a row.")
    last_check_error: str | None
    created_at: datetime
    updated_at: datetime


class BuildServerStatusChange(Strict):
    """Maintenance lets running builds finish and starts none; decommissioned leaves the pool."""

    status: Literal[ServerStatus.online, ServerStatus.maintenance, ServerStatus.decommissioned]
