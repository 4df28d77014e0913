"""The audit log, read by admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from labfleet.api.deps import Admin, SessionDep
from labfleet.api.problems import responses
from labfleet.errors import Invalid
from labfleet.schemas.audit import AuditEntryOut
from labfleet.schemas.common import Page
from labfleet.schemas.query import MAX_PAGE
from labfleet.services.core import audit
from labfleet.services.retention import service as retention

router = APIRouter(prefix="/audit-log", tags=["audit-log"], responses=responses(401, 403, 422))


@router.get("", response_model=Page[AuditEntryOut], summary="List changes, newest first")
async def list_audit_log(
    session: SessionDep,
    _: Admin,
    object_type: Annotated[str | None, Query()] = None,
    object_id: Annotated[int | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[AuditEntryOut]:
    total, rows = await audit.entries(
        session=session, object_type=object_type, object_id=object_id, limit=limit, offset=offset
    )
    return Page(count=total, items=[AuditEntryOut.model_validate(r, from_attributes=True) for r in rows])


@router.get(
    "/export",
    summary="Export the audit log as JSON lines, oldest first",
    description="One JSON object per line, as the retention archive writes them; `since` and `before` "
    "bound it by time. Take one before entries pass `retention.audit_log_days` if the archive is "
    "not kept elsewhere.",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "The entries."}},
)
async def export_audit_log(
    session: SessionDep,
    _: Admin,
    since: Annotated[datetime | None, Query(description="From this time on.")] = None,
    before: Annotated[datetime | None, Query(description="Before this time.")] = None,
) -> StreamingResponse:
    if since is not None and before is not None and since >= before:
        raise Invalid(
            f"since ({since.isoformat()}) must be before before ({before.isoformat()})", field="since"
        )
    lines = retention.export(session, since=since, before=before)
    return StreamingResponse(lines, media_type="application/x-ndjson")
