"""Board power as the API takes and shows it (R18): switch, cycle, state, the record of each action."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from labfleet.schemas.common import StatusOut, Strict


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


BootPattern = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_regex)]


ActionName = Literal["on", "off", "cycle", "state"]


class PowerSet(Strict):
    state: Literal["on", "off"]


class PowerCycleIn(Strict):
    """How to cycle; each field left out takes the board's or the server's default."""

    boot_timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="How long to watch the console for the boot pattern."
    )
    retries: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Power cycles tried in all before the board is marked failed (1: no retry).",
    )
    off_s: float | None = Field(default=None, ge=0, le=600, description="Seconds the board stays off.")
    boot_pattern: BootPattern | None = Field(
        default=None,
        description="Regular expression the console prints once the board has booted; by default the "
        "board's `boot-pattern` label, else the server's default (a login or shell prompt).",
    )


class PowerActionOut(BaseModel):
    id: int
    url: str
    display: str
    board_id: int
    board: str
    action: ActionName
    status: StatusOut
    requested_by: str
    team: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    attempts: int
    max_attempts: int
    power_state: str | None = Field(description="on, off or unknown: read (state) or switched to.")
    boot_seen: bool | None = Field(description="A cycle: the boot pattern appeared (null: not watched).")
    error: str | None
    detail: dict[str, Any] = Field(description="Each attempt of a cycle, the pattern, the timings used.")
