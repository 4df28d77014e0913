"""The status choices of every collection, with their labels and colours."""

from __future__ import annotations

from fastapi import APIRouter

from labfleet.api.deps import SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.schemas.common import StatusOut
from labfleet.schemas.enums import (
    EnvironmentStatus,
    FlashJobStatus,
    PipelineStatus,
    PowerActionStatus,
    StageStatus,
    TestResultStatus,
    WorkStatus,
)
from labfleet.services.core import statuses

router = APIRouter(prefix="/statuses", tags=["statuses"], responses=responses(401, 403, 422))

# Those with no status table; build jobs have one, listed with the resources'.
WORK_STATUSES: dict[str, type[WorkStatus]] = {
    "flash_job": FlashJobStatus,
    "power_action": PowerActionStatus,
    "pipeline": PipelineStatus,
    "pipeline_stage": StageStatus,
    "test_result": TestResultStatus,
    "environment": EnvironmentStatus,
}


@router.get("", response_model=dict[str, list[StatusOut]], summary="Status choices per collection")
async def list_statuses(session: SessionDep, _: Viewer) -> dict[str, list[StatusOut]]:
    choices = await statuses.all_choices(session=session)
    tables = {
        kind: [StatusOut(value=c.value, label=c.label, colour=c.colour) for c in rows]
        for kind, rows in choices.items()
    }
    return tables | {kind: [StatusOut.of(s) for s in enum] for kind, enum in WORK_STATUSES.items()}
