"""The status choices of every collection, with their labels and colours."""

from __future__ import annotations

from fastapi import APIRouter

from labfleet.api.deps import SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.schemas.common import StatusOut
from labfleet.services.core import statuses

router = APIRouter(prefix="/statuses", tags=["statuses"], responses=responses(401, 403, 422))


@router.get("", response_model=dict[str, list[StatusOut]], summary="Status choices per collection")
async def list_statuses(session: SessionDep, _: Viewer) -> dict[str, list[StatusOut]]:
    choices = await statuses.all_choices(session=session)
    return {
        kind: [StatusOut(value=c.value, label=c.label, colour=c.colour) for c in rows]
        for kind, rows in choices.items()
    }
