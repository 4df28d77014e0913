"""Environments: a reserved target with artifacts deployed and booted."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.api.deps import Operator, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.db.models import Environment
from labfleet.errors import Unavailable
from labfleet.schemas.common import Page, StatusOut
from labfleet.schemas.enums import EnvironmentStatus
from labfleet.schemas.environments import EnvironmentCreate, EnvironmentOut
from labfleet.schemas.query import MAX_PAGE
from labfleet.services.environments import service as environments

# Under the pipelines tag: clients find environments beside the pipelines that make them.
router = APIRouter(tags=["pipelines"], responses=responses(401, 403, 422))
EnvIdent = Annotated[int, Path(alias="id", description="The environment's id.")]
Explain = Annotated[bool, Query(description="How an `auto` target was chosen.")]


async def render_environment(
    session: AsyncSession, env: Environment, base: str, *, explain: bool
) -> EnvironmentOut:
    host, board = await environments.names(session, env)
    return EnvironmentOut(
        id=env.id,
        url=f"{base}/environments/{env.id}",
        display=environments.display(env),
        kind=env.kind,
        status=StatusOut.of(EnvironmentStatus(env.status)),
        owner=env.owner,
        team=env.team,
        purpose=env.purpose,
        architecture=env.architecture,
        target=str(env.request.get("target", "auto")),
        host_id=env.host_id,
        host=host,
        board_id=env.board_id,
        board=board,
        reservation_id=env.reservation_id,
        pipeline_id=env.pipeline_id,
        build_job_id=env.build_job_id,
        artifacts=env.artifacts,
        vcpus=env.vcpus,
        memory_mb=env.memory_mb,
        domain_name=env.domain_name,
        console_url=env.console_url,
        warnings=list(env.warnings),
        failed_resources=list(env.failed_resources),
        error=env.error,
        steps=list(env.detail.get("steps", [])),
        created_at=env.created_at,
        ready_at=env.ready_at,
        expires_at=env.expires_at,
        released_at=env.released_at,
        release_reason=env.release_reason,
        decision=env.decision if explain else None,
    )


@router.post(
    "/environments",
    status_code=201,
    response_model=EnvironmentOut,
    summary="Create an environment: artifacts deployed and booted on a reserved host or board",
    description="422 naming the field when the artifacts cannot run on the target (architecture, "
    "machine, board type) or nothing could ever take it; 409 with `alternatives` when nothing can "
    "now. Then `pending` until deployed and booted: `ready`, or `failed` with the reason.",
    operation_id="create_environment",
    responses=responses(409),
)
async def create_environment(
    request: Request,
    response: Response,
    session: SessionDep,
    actor: Operator,
    data: EnvironmentCreate,
    explain: Explain = False,
) -> EnvironmentOut:
    try:
        env = await environments.create(session=session, actor=actor, data=data)
    except Unavailable as exc:
        if not explain:
            exc.decision = None
        raise
    await session.commit()
    environments.announce(request.app.state.bus, env)  # a worker wakes for it
    out = await render_environment(session, env, api_base(request), explain=explain)
    response.headers["Location"] = out.url
    return out


@router.get(
    "/environments",
    response_model=Page[EnvironmentOut],
    summary="List environments",
    operation_id="list_environments",
)
async def list_environments(
    request: Request,
    session: SessionDep,
    _: Viewer,
    status: Annotated[str | None, Query(max_length=16)] = None,
    owner: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[EnvironmentOut]:
    total, rows = await environments.search(
        session=session, status=status, owner=owner, limit=limit, offset=offset
    )
    base = api_base(request)
    return Page(count=total, items=[await render_environment(session, e, base, explain=False) for e in rows])


@router.get(
    "/environments/{id}",
    response_model=EnvironmentOut,
    summary="An environment",
    operation_id="get_environment",
    responses=responses(404),
)
async def get_environment(
    request: Request, session: SessionDep, _: Viewer, ident: EnvIdent, explain: Explain = False
) -> EnvironmentOut:
    env = await environments.get(session=session, ident=ident)
    return await render_environment(session, env, api_base(request), explain=explain)


@router.post(
    "/environments/{id}/release",
    status_code=202,
    response_model=EnvironmentOut,
    summary="Tear an environment down and release what it holds",
    operation_id="release_environment",
    responses=responses(404, 409),
)
async def release_environment(
    request: Request, session: SessionDep, actor: Operator, ident: EnvIdent
) -> EnvironmentOut:
    env = await environments.request_release(
        session=session, actor=actor, ident=ident, reason=f"released by {actor.name}"
    )
    await session.commit()
    environments.announce(request.app.state.bus, env)
    return await render_environment(session, env, api_base(request), explain=False)
