"""Reservations as the API takes and shows them (R11.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from labfleet.schemas.boards import Peripherals
from labfleet.schemas.common import ArchitectureName, Labels, Slug, Strict

MAX_HOLD_S = 30 * 24 * 3600
MAX_VCPUS = 4096
MAX_MEMORY_MB = 64 * 1024 * 1024
MAX_DISK_GB = 1024 * 1024


class AutoHost(Strict):
    """Capacity for a VM on whichever QEMU host suits it best (R11.3, R13.2, R13.4)."""

    auto: Literal["host"]
    architecture: ArchitectureName = Field(description="The guest's architecture (kernel name).")
    kvm: bool = Field(
        default=False, description="KVM required: only hosts running the architecture natively with KVM."
    )
    vcpus: int = Field(default=1, ge=1, le=MAX_VCPUS)
    memory_mb: int = Field(default=1024, ge=1, le=MAX_MEMORY_MB)
    disk_gb: float = Field(default=0.0, ge=0, le=MAX_DISK_GB)
    labels: Labels = Field(default_factory=dict, description="Labels the host must carry, with these values.")


class AutoBoard(Strict):
    """Whichever board suits best: least used, healthiest (R11.3, R13.3, R13.4)."""

    auto: Literal["board"]
    architecture: ArchitectureName
    board_type: Slug | None = Field(default=None, description="Only boards of this type, e.g. rpi4.")
    peripherals: Peripherals = Field(
        default_factory=list, description="Peripherals the board must have wired (all of them)."
    )
    labels: Labels = Field(
        default_factory=dict, description="Labels the board must carry, with these values."
    )


AutoTarget = Annotated[AutoHost | AutoBoard, Field(discriminator="auto")]


class ReservationCreate(Strict):
    host_id: int | None = Field(default=None, ge=1, description="Reserve capacity on this QEMU host...")
    board_id: int | None = Field(default=None, ge=1, description="...or this whole board...")
    target: AutoTarget | None = Field(
        default=None,
        description="...or let labfleet choose (`auto`): a host for a VM of this size, or a board "
        "with these traits. `?explain=true` shows why it chose what it did.",
    )
    vcpus: int = Field(default=0, ge=0, le=MAX_VCPUS)
    memory_mb: int = Field(default=0, ge=0, le=MAX_MEMORY_MB)
    disk_gb: float = Field(default=0.0, ge=0, le=MAX_DISK_GB)
    purpose: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
    expires_in_s: int = Field(
        default=3600, ge=60, le=MAX_HOLD_S, description="Released automatically after this long."
    )

    @model_validator(mode="after")
    def _one_target(self) -> ReservationCreate:
        given = sum(x is not None for x in (self.host_id, self.board_id, self.target))
        if given != 1:
            raise ValueError("give host_id or board_id, or an auto target (one of them)")
        if self.target is not None:
            if self.vcpus or self.memory_mb or self.disk_gb:
                raise ValueError("with an auto target, give vcpus, memory_mb and disk_gb in the target")
            return self
        if self.board_id is not None and (self.vcpus or self.memory_mb or self.disk_gb):
            raise ValueError("a board is reserved whole: vcpus, memory_mb and disk_gb are for hosts")
        if self.host_id is not None and not (self.vcpus or self.memory_mb or self.disk_gb):
            raise ValueError("reserve some of the host: vcpus, memory_mb and/or disk_gb")
        return self


class ReservationExtend(Strict):
    expires_in_s: int = Field(ge=60, le=MAX_HOLD_S, description="The new expiry, counted from now.")


class ReservationOut(BaseModel):
    id: int
    url: str
    display: str
    host_id: int | None
    board_id: int | None
    owner: str
    team: str | None
    purpose: str
    vcpus: int
    memory_mb: int
    disk_gb: float
    created_at: datetime
    expires_at: datetime
    released_at: datetime | None
    release_reason: str | None
    active: bool
    auto: Literal["host", "board"] | None = Field(
        default=None, description="Chosen by labfleet (an `auto` target), or None when asked for by id."
    )
    warnings: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Capacity warnings about what was chosen (near full, near its threshold, degraded).",
    )
    decision: dict[str, Any] | None = Field(
        default=None,
        description="How an `auto` target was chosen: candidates, exclusions, scores (with ?explain=true).",
    )
