"""Reservations as the API takes and shows them (R11.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, model_validator

from labfleet.schemas.common import Strict

MAX_HOLD_S = 30 * 24 * 3600


class ReservationCreate(Strict):
    host_id: int | None = Field(default=None, ge=1, description="Reserve capacity on this QEMU host...")
    board_id: int | None = Field(default=None, ge=1, description="...or this whole board.")
    vcpus: int = Field(default=0, ge=0, le=4096)
    memory_mb: int = Field(default=0, ge=0, le=64 * 1024 * 1024)
    disk_gb: float = Field(default=0.0, ge=0, le=1024 * 1024)
    purpose: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
    expires_in_s: int = Field(
        default=3600, ge=60, le=MAX_HOLD_S, description="Released automatically after this long."
    )

    @model_validator(mode="after")
    def _one_target(self) -> ReservationCreate:
        if (self.host_id is None) == (self.board_id is None):
            raise ValueError("give host_id or board_id (one of them)")
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
