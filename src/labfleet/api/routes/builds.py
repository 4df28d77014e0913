"""Build jobs: submit, list, show (with the placement decision), cancel, retry, logs by offset."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.api import render
from labfleet.api.deps import BuildPolicyDep, Operator, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.db.models import BuildJob
from labfleet.errors import Invalid
from labfleet.schemas.builds import BuildJobCreate, BuildJobOut
from labfleet.schemas.common import Page
from labfleet.schemas.enums import BuildJobStatus
from labfleet.schemas.query import MAX_PAGE
from labfleet.services.builds import service as builds
from labfleet.services.core.events import EventBus

router = APIRouter(prefix="/build-jobs", tags=["builds"], responses=responses(401, 403, 422))
Ident = Annotated[int, Path(alias="id", description="The build job's id.")]
Explain = Annotated[
    bool, Query(description="Include the placement decision: candidates, exclusions, scores.")
]
STATUSES = tuple(BuildJobStatus)


def _bus(request: Request) -> EventBus:
    bus: EventBus = request.app.state.bus
    return bus


PolicyDep = BuildPolicyDep
BusDep = Annotated[EventBus, Depends(_bus)]


async def _render(
    request: Request, session: AsyncSession, jobs: list[BuildJob], *, explain: bool = False
) -> list[BuildJobOut]:
    servers = await builds.server_names(session)
    starts = (
        await builds.estimated_starts(session=session)
        if any(j.status == BuildJobStatus.queued for j in jobs)
        else {}
    )
    base = api_base(request)
    return [
        render.build_job(j, base, servers=servers, estimated_start=starts.get(j.id), explain=explain)
        for j in jobs
    ]


def _answer_created(
    request: Request, response: Response, session: SessionDep, bus: BusDep
) -> Callable[[BuildJob], Awaitable[BuildJobOut]]:
    """How a request that made a build job answers: committed, announced, shown at its Location."""

    async def answer(job: BuildJob) -> BuildJobOut:
        await session.commit()
        builds.announce(bus, job)
        out = (await _render(request, session, [job], explain=True))[0]
        response.headers["Location"] = out.url
        return out

    return answer


AnswerCreated = Annotated[Callable[[BuildJob], Awaitable[BuildJobOut]], Depends(_answer_created)]


@router.post(
    "",
    status_code=201,
    response_model=BuildJobOut,
    summary="Submit a build",
    description="Placed at once on the best build server (`auto`) or the one named; queued when it is "
    "busy. 422 when no registered server has a toolchain for the architecture.",
    operation_id="submit_build",
)
async def submit_build(
    session: SessionDep, actor: Operator, policy: PolicyDep, answer: AnswerCreated, data: BuildJobCreate
) -> BuildJobOut:
    job = await builds.submit(session=session, actor=actor, policy=policy, data=data)
    return await answer(job)


@router.get("", response_model=Page[BuildJobOut], summary="List build jobs", operation_id="list_builds")
async def list_builds(
    request: Request,
    session: SessionDep,
    _: Viewer,
    status: Annotated[
        list[str] | None, Query(description=f"One of {', '.join(STATUSES)}; repeatable.")
    ] = None,
    architecture: Annotated[str | None, Query(max_length=32)] = None,
    repository: Annotated[str | None, Query(max_length=1024, description="Repository URL.")] = None,
    branch: Annotated[str | None, Query(max_length=255)] = None,
    build_server_id: Annotated[int | None, Query()] = None,
    explain: Explain = False,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[BuildJobOut]:
    for value in status or ():
        if value not in STATUSES:
            raise Invalid(f"unknown status {value!r}; one of {', '.join(STATUSES)}", field="status")
    total, jobs = await builds.search(
        session=session,
        statuses=status,
        architecture=architecture,
        repository_url=repository,
        branch=branch,
        build_server_id=build_server_id,
        limit=limit,
        offset=offset,
    )
    return Page[BuildJobOut](count=total, items=await _render(request, session, jobs, explain=explain))


@router.get(
    "/{id}",
    response_model=BuildJobOut,
    summary="Show a build job",
    operation_id="get_build",
    responses=responses(404),
)
async def get_build(
    request: Request, session: SessionDep, _: Viewer, ident: Ident, explain: Explain = False
) -> BuildJobOut:
    job = await builds.get(session=session, ident=ident)
    return (await _render(request, session, [job], explain=explain))[0]


@router.post(
    "/{id}/cancel",
    response_model=BuildJobOut,
    summary="Cancel a build",
    description="A queued build is cancelled at once. A running one is stopped by its worker: the "
    "remote process group is killed and the workspace removed; the status follows shortly.",
    operation_id="cancel_build",
    responses=responses(404, 409),
)
async def cancel_build(
    request: Request, session: SessionDep, actor: Operator, bus: BusDep, ident: Ident
) -> BuildJobOut:
    job = await builds.cancel(session=session, actor=actor, ident=ident)
    await session.commit()
    builds.announce(bus, job)
    return (await _render(request, session, [job]))[0]


@router.post(
    "/{id}/retry",
    status_code=201,
    response_model=BuildJobOut,
    summary="Retry a finished build as a new job linked to it",
    operation_id="retry_build",
    responses=responses(404, 409),
)
async def retry_build(
    session: SessionDep, actor: Operator, policy: PolicyDep, answer: AnswerCreated, ident: Ident
) -> BuildJobOut:
    job = await builds.retry(session=session, actor=actor, policy=policy, ident=ident)
    return await answer(job)


@router.get(
    "/{id}/logs",
    summary="The build's log from a byte offset",
    description="Plain text from `offset`. `X-Log-Size` is the size stored so far and `X-Log-Complete` "
    "says whether more can come; read again from `offset + length` to follow.",
    operation_id="build_logs",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **responses(404)},
)
async def build_logs(
    session: SessionDep,
    _: Viewer,
    ident: Ident,
    offset: Annotated[int, Query(ge=0, description="Byte offset to start from.")] = 0,
    limit: Annotated[int, Query(ge=1, le=builds.LOG_READ_LIMIT)] = builds.LOG_READ_LIMIT,
) -> Response:
    part = await builds.read_log(session=session, ident=ident, offset=offset, limit=limit)
    return Response(
        content=part.data,
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Log-Offset": str(part.offset),
            "X-Log-Size": str(part.size),
            "X-Log-Complete": "true" if part.complete else "false",
            "X-Job-Status": part.status,
            "Cache-Control": "no-store",
        },
    )
