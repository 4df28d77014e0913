"""The audit log, read by admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from labfleet.api.deps import Admin, SessionDep
from labfleet.api.problems import responses
from labfleet.schemas.audit import AuditEntryOut
from labfleet.schemas.common import Page
from labfleet.schemas.query import MAX_PAGE
from labfleet.services.core import audit

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
