"""``PUT /hosts/{id}/status`` and ``PUT /boards/{id}/status``: maintenance, online, decommissioned.

Going back online runs a health check first (R12.3): the device is asked with no database
transaction open, then the change is made; a device that does not answer stays where it was.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from labfleet.api import render
from labfleet.api.deps import Admin, SecretsDep, SessionDep
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.errors import Conflict, DeviceError
from labfleet.schemas.boards import BoardOut
from labfleet.schemas.enums import BoardStatus, ServerStatus
from labfleet.schemas.hosts import HostOut
from labfleet.schemas.lifecycle import StatusChange
from labfleet.services.health.probes import ResourceProbe, board_access, host_access
from labfleet.services.inventory import boards, hosts

router = APIRouter(responses=responses(401, 403, 404, 409, 422))
Ident = Annotated[int, Path(alias="id")]
_DESCRIPTION = (
    "Maintenance: work already running goes on, nothing new is reserved. Online: after a health "
    "check (409 if it fails; the status stays). Decommissioned: refused (409) while a reservation "
    "holds it; it stays in the history, out of the pool."
)


def _probe(request: Request) -> ResourceProbe:
    probe: ResourceProbe = request.app.state.probe
    return probe


@router.put(
    "/hosts/{id}/status",
    response_model=HostOut,
    tags=["hosts"],
    summary="Put a host in maintenance, back online, or decommission it",
    description=_DESCRIPTION,
    operation_id="set_host_status",
)
async def set_host_status(
    request: Request, session: SessionDep, actor: Admin, ident: Ident, change: StatusChange
) -> HostOut:
    host = await hosts.get(session=session, ident=ident)
    current, access = host.status, host_access(host)
    await session.rollback()  # nothing held while the device is asked
    if change.status == "online" and current != "online":
        try:
            await _probe(request).host(access)
        except DeviceError as exc:
            raise Conflict(
                f"host {access.name} failed its health check, so it stays {current}: {exc.message}"
            ) from exc
    host = await hosts.set_status(
        session=session, actor=actor, ident=ident, status=ServerStatus(change.status)
    )
    await session.commit()
    return render.host(host, api_base(request))


@router.put(
    "/boards/{id}/status",
    response_model=BoardOut,
    tags=["boards"],
    summary="Put a board in maintenance, back online, or decommission it",
    description=_DESCRIPTION,
    operation_id="set_board_status",
)
async def set_board_status(
    request: Request,
    session: SessionDep,
    actor: Admin,
    secrets: SecretsDep,
    ident: Ident,
    change: StatusChange,
) -> BoardOut:
    board = await boards.get(session=session, ident=ident)
    current, access = board.status, board_access(board, secrets)
    await session.rollback()
    if change.status == "online" and current != "online":
        try:
            await _probe(request).board(access)
        except DeviceError as exc:
            raise Conflict(
                f"board {access.name} failed its health check, so it stays {current}: {exc.message}"
            ) from exc
    board = await boards.set_status(
        session=session, actor=actor, ident=ident, status=BoardStatus(change.status)
    )
    await session.commit()
    return render.board(board, api_base(request))
