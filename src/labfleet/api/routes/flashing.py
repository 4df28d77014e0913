"""Flashing boards (R6.2-6.5): ask for a flash (a durable job the engine runs), follow it, the history."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from fastapi import APIRouter, Depends, Path, Query, Request, status

from labfleet.api.deps import Operator, OptionalBusDep, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.db.models import Board, FlashJob
from labfleet.schemas.common import Page, StatusOut
from labfleet.schemas.enums import FlashJobStatus
from labfleet.schemas.flashing import FlashJobOut, FlashProgressOut, FlashRequest
from labfleet.schemas.query import MAX_PAGE
from labfleet.services.flashing import service as flashing
from labfleet.services.inventory import boards

router = APIRouter(tags=["flashing"], responses=responses(401, 403, 422))
BoardIdent = Annotated[int, Path(alias="id", description="The board's id.")]
JobIdent = Annotated[int, Path(alias="id", description="The flash job's id.")]


def policy(request: Request) -> flashing.FlashPolicy:
    """The server's flashing defaults (``LABFLEET_FLASH_*``, read once at start)."""
    policy: flashing.FlashPolicy = request.app.state.flash_policy
    return policy


PolicyDep = Annotated[flashing.FlashPolicy, Depends(policy)]


def render(job: FlashJob, board: Board, base: str) -> FlashJobOut:
    return FlashJobOut(
        id=job.id,
        url=f"{base}/flash-jobs/{job.id}",
        display=flashing.display(job, board.name),
        board_id=board.id,
        board=board.name,
        artifact_id=job.artifact_id,
        artifact_sha256=job.artifact_sha256,
        status=StatusOut.of(FlashJobStatus(job.status)),
        mode=cast(Literal["flash", "rollback"], job.mode),
        progress=FlashProgressOut(phase=job.phase, bytes_done=job.bytes_done, bytes_total=job.bytes_total),
        target_version=job.target_version,
        previous_status=job.previous_status,
        rollback_artifact_id=job.rollback_artifact_id,
        boot_check=job.boot_check,
        requested_by=job.requested_by,
        team=job.team,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        error=job.error,
        detail=job.detail,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.post(
    "/boards/{id}/flash",
    response_model=FlashJobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Flash an artifact to a board",
    description="Queues a flash job and answers at once; the board is `flashing` from now until the job "
    "ends (no reservation, power action or other flash meanwhile). The engine writes the image, verifies "
    "it, power-cycles the board and watches it boot (`boot_check`); a failure writes the board's "
    "known-good image back (`rolled_back`). Progress is announced on the `flash-job:<id>` and "
    "`board:<id>` events topics. 409 when the board is being flashed, reserved by someone else, in "
    "maintenance, decommissioned, failed (without `force`) or has no flash station; 422 when the artifact "
    "does not exist or is built for another architecture.",
    operation_id="flash_board",
    responses=responses(404, 409),
)
async def flash_board(
    request: Request,
    session: SessionDep,
    actor: Operator,
    defaults: PolicyDep,
    bus: OptionalBusDep,
    ident: BoardIdent,
    data: FlashRequest,
) -> FlashJobOut:
    job = await flashing.request_flash(
        session=session, actor=actor, board_id=ident, data=data, policy=defaults
    )
    await session.commit()
    flashing.announce(bus, job)
    board = await boards.get(session=session, ident=ident)
    return render(job, board, api_base(request))


@router.get(
    "/flash-jobs/{id}",
    response_model=FlashJobOut,
    summary="One flash job: its status, progress and steps",
    operation_id="get_flash_job",
    responses=responses(404),
)
async def get_flash_job(request: Request, session: SessionDep, _: Viewer, ident: JobIdent) -> FlashJobOut:
    job = await flashing.get(session=session, job_id=ident)
    board = await boards.get(session=session, ident=job.board_id)
    return render(job, board, api_base(request))


@router.get(
    "/boards/{id}/flash-jobs",
    response_model=Page[FlashJobOut],
    summary="A board's flash jobs, newest first",
    operation_id="list_board_flash_jobs",
    responses=responses(404),
)
async def list_board_flash_jobs(
    request: Request,
    session: SessionDep,
    _: Viewer,
    ident: BoardIdent,
    status_: Annotated[
        list[FlashJobStatus] | None, Query(alias="status", description="Only these; repeatable.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[FlashJobOut]:
    total, rows = await flashing.history(
        session=session, board_id=ident, statuses=list(status_ or []), limit=limit, offset=offset
    )
    board = await boards.get(session=session, ident=ident)
    base = api_base(request)
    return Page[FlashJobOut](count=total, items=[render(j, board, base) for j in rows])
