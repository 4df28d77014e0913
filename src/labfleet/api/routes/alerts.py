"""``/alerts``: list them, acknowledge one, resolve one (R16)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Path, Query

from labfleet.api.deps import Operator, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.db.models import Alert
from labfleet.schemas.alerts import AlertAction, AlertOut, AlertState, AlertSubject, Severity
from labfleet.schemas.common import Page
from labfleet.schemas.query import MAX_PAGE, ListQuery
from labfleet.services.alerts import service as alerts

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=responses(401, 403, 422))
Ident = Annotated[int, Path(alias="id")]


def _out(alert: object) -> AlertOut:
    return AlertOut.model_validate(alert, from_attributes=True)


async def _act(session: SessionDep, done: Awaitable[Alert]) -> AlertOut:
    alert = await done
    await session.commit()
    return _out(alert)


@router.get("", response_model=Page[AlertOut], summary="List alerts, newest first")
async def list_alerts(
    session: SessionDep,
    _: Viewer,
    state: Annotated[AlertState | None, Query()] = None,
    severity: Annotated[Severity | None, Query()] = None,
    resource_kind: Annotated[AlertSubject | None, Query()] = None,
    resource_id: Annotated[int | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[AlertOut]:
    fields = {
        "state": state,
        "severity": severity,
        "resource_kind": resource_kind,
        "resource_id": resource_id,
        "kind": kind,
    }
    total, rows = await alerts.search(session, ListQuery(limit=limit, offset=offset, fields=fields))
    return Page(count=total, items=[_out(r) for r in rows])


@router.get("/{id}", response_model=AlertOut, summary="Show an alert", responses=responses(404))
async def get_alert(session: SessionDep, _: Viewer, ident: Ident) -> AlertOut:
    return _out(await alerts.get(session, ident))


@router.post(
    "/{id}/acknowledge",
    response_model=AlertOut,
    summary="Acknowledge an open alert, with a comment",
    responses=responses(404, 409),
)
async def acknowledge_alert(
    session: SessionDep, actor: Operator, ident: Ident, action: AlertAction | None = None
) -> AlertOut:
    return await _act(session, alerts.acknowledge(session, actor, ident, action.comment if action else None))


@router.post(
    "/{id}/resolve",
    response_model=AlertOut,
    summary="Resolve an alert by hand; a condition still there raises a new one",
    responses=responses(404, 409),
)
async def resolve_alert(
    session: SessionDep, actor: Operator, ident: Ident, action: AlertAction | None = None
) -> AlertOut:
    return await _act(session, alerts.resolve(session, actor, ident, action.comment if action else None))
