"""Reservations: hold a host's capacity or a whole board, list, extend, release."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from labfleet.api import render
from labfleet.api.deps import Operator, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.errors import Unavailable
from labfleet.schemas.common import Page
from labfleet.schemas.query import MAX_PAGE, ListQuery
from labfleet.schemas.reservations import ReservationCreate, ReservationExtend, ReservationOut
from labfleet.services.reservations import service as reservations

router = APIRouter(prefix="/reservations", tags=["reservations"], responses=responses(401, 403, 422))
Ident = Annotated[int, Path(alias="id", description="The reservation's id.")]
Explain = Annotated[
    bool,
    Query(description="For an `auto` target: how it was chosen (candidates, exclusions, scores, warnings)."),
]


@router.post(
    "",
    status_code=201,
    response_model=ReservationOut,
    summary="Reserve a host's capacity or a whole board, named or chosen (`auto`)",
    description="409 when the host lacks the capacity (after what others hold), the board is held, "
    "or the resource is in maintenance, flashing, offline or decommissioned. Expires by itself. "
    "With an `auto` target labfleet chooses the best host or board that meets every requirement; "
    "422 (naming the field) when nothing in the pool ever could, 409 with `alternatives` (what each "
    "lacks) when nothing can now.",
    operation_id="create_reservation",
    responses=responses(404, 409),
)
async def create_reservation(
    request: Request,
    response: Response,
    session: SessionDep,
    actor: Operator,
    data: ReservationCreate,
    explain: Explain = False,
) -> ReservationOut:
    try:
        r = await reservations.reserve(session=session, actor=actor, data=data)
    except Unavailable as exc:
        if not explain:
            exc.decision = None
        raise
    await session.commit()
    out = render.reservation(r, api_base(request), explain=explain)
    response.headers["Location"] = out.url
    return out


@router.get(
    "", response_model=Page[ReservationOut], summary="List reservations", operation_id="list_reservations"
)
async def list_reservations(
    request: Request,
    session: SessionDep,
    _: Viewer,
    active: Annotated[
        bool, Query(description="Only those held now (default); false: all, history too.")
    ] = True,
    host_id: Annotated[int | None, Query(ge=1)] = None,
    board_id: Annotated[int | None, Query(ge=1)] = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    team: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[ReservationOut]:
    fields = {"host_id": host_id, "board_id": board_id, "owner": owner, "team": team}
    query = ListQuery(limit=limit, offset=offset, fields=fields)
    total, items = await reservations.search(session=session, query=query, only_active=active)
    base = api_base(request)
    return Page[ReservationOut](count=total, items=[render.reservation(r, base) for r in items])


@router.get(
    "/{id}",
    response_model=ReservationOut,
    summary="Show a reservation",
    operation_id="get_reservation",
    responses=responses(404),
)
async def get_reservation(
    request: Request, session: SessionDep, _: Viewer, ident: Ident, explain: Explain = False
) -> ReservationOut:
    r = await reservations.get(session=session, ident=ident)
    return render.reservation(r, api_base(request), explain=explain)


@router.post(
    "/{id}/extend",
    response_model=ReservationOut,
    summary="Extend a reservation",
    operation_id="extend_reservation",
    responses=responses(404, 409),
)
async def extend_reservation(
    request: Request, session: SessionDep, actor: Operator, ident: Ident, data: ReservationExtend
) -> ReservationOut:
    r = await reservations.extend(session=session, actor=actor, ident=ident, expires_in_s=data.expires_in_s)
    await session.commit()
    return render.reservation(r, api_base(request))


@router.post(
    "/{id}/release",
    response_model=ReservationOut,
    summary="Release a reservation: exactly what it held is free again",
    operation_id="release_reservation",
    responses=responses(404, 409),
)
async def release_reservation(
    request: Request, session: SessionDep, actor: Operator, ident: Ident
) -> ReservationOut:
    r = await reservations.release(session=session, actor=actor, ident=ident)
    await session.commit()
    return render.reservation(r, api_base(request))
