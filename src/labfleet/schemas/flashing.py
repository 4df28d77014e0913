"""Flashing a board as the API takes and shows it (R6.2-6.5): the request, the job and its progress."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from labfleet.schemas.common import StatusOut, Strict


class FlashRequest(Strict):
    artifact_id: int = Field(ge=1, description="The artifact to write; its architecture must be the board's.")
    version: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="The firmware version it is; by default the artifact's commit."
    )
    boot_check: bool | None = Field(
        default=None,
        description="Power-cycle the board after writing and watch its console for the boot pattern; by "
        "default when the board has a console and power control.",
    )
    force: bool = Field(default=False, description="Flash a board whose status is `failed`.")


class FlashProgressOut(BaseModel):
    phase: str | None = Field(description="stage, write, verify, boot or done.")
    bytes_done: int
    bytes_total: int


class FlashJobOut(BaseModel):
    id: int
    url: str
    display: str
    board_id: int
    board: str
    artifact_id: int | None
    artifact_sha256: str
    status: StatusOut
    mode: Literal["flash", "rollback"] = Field(
        description="`rollback` once every attempt was used by processes that stopped: the next run only "
        "writes the known-good image back."
    )
    progress: FlashProgressOut
    target_version: str
    previous_status: str
    rollback_artifact_id: int | None = Field(description="The known-good image a failure is rolled back to.")
    boot_check: bool
    requested_by: str
    team: str | None
    attempt: int
    max_attempts: int
    error: str | None
    detail: dict[str, Any] = Field(description="Each step of each attempt, and what the boot watch saw.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
