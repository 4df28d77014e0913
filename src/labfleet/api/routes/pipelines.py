"""Pipelines: build -> deploy -> boot -> test."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.api.deps import BuildPolicyDep, Operator, SessionDep, Viewer
from labfleet.api.problems import responses
from labfleet.api.routes.inventory import api_base
from labfleet.db.models import Pipeline, PipelineStage, TestResult
from labfleet.schemas.common import Page, StatusOut
from labfleet.schemas.enums import PipelineStatus, StageStatus, TestResultStatus
from labfleet.schemas.pipelines import (
    PipelineCreate,
    PipelineLogOut,
    PipelineOut,
    PipelineStatsRow,
    StageOut,
    StageRetry,
    TestResultOut,
)
from labfleet.schemas.query import MAX_PAGE
from labfleet.services.builds.logs import complete_utf8
from labfleet.services.core.events import EventBus
from labfleet.services.pipelines import service as pipelines

router = APIRouter(tags=["pipelines"], responses=responses(401, 403, 422))
Ident = Annotated[int, Path(alias="id", description="The pipeline's id.")]


async def render_pipeline(session: AsyncSession, p: Pipeline, base: str) -> PipelineOut:
    rows = await pipelines.stages(session, p.id)
    results = await pipelines.latest_results(session, rows)
    url = f"{base}/pipelines/{p.id}"
    return PipelineOut(
        id=p.id,
        url=url,
        display=pipelines.display(p),
        repository_url=p.repository_url,
        branch=p.branch,
        requested_commit=p.requested_commit,
        resolved_commit=p.resolved_commit,
        architecture=p.architecture,
        environment_type=p.environment_type,
        target=str(p.spec.get("target", "auto")),
        status=StatusOut.of(PipelineStatus(p.status)),
        submitted_by=p.submitted_by,
        team=p.team,
        build_job_id=p.build_job_id,
        environment_id=p.environment_id,
        created_at=p.created_at,
        started_at=p.started_at,
        finished_at=p.finished_at,
        error=p.error,
        cancel_requested_at=p.cancel_requested_at,
        log_size=p.log_size,
        logs_url=f"{url}/logs",
        stages=[_stage_out(s) for s in rows],
        tests=[_test_out(r) for r in results],
        spec=p.spec,
    )


def _stage_out(s: PipelineStage) -> StageOut:
    return StageOut(
        name=s.name,
        position=s.position,
        status=StatusOut.of(StageStatus(s.status)),
        attempt=s.attempt,
        started_at=s.started_at,
        finished_at=s.finished_at,
        duration_s=(s.finished_at - s.started_at).total_seconds() if s.started_at and s.finished_at else None,
        error=s.error,
        resources=s.resources,
        log_start=s.log_start,
        log_end=s.log_end,
    )


def _test_out(r: TestResult) -> TestResultOut:
    return TestResultOut(
        name=r.name,
        command=r.command,
        status=StatusOut.of(TestResultStatus(r.status)),
        exit_status=r.exit_status,
        output=r.output,
        attempt=r.attempt,
        started_at=r.started_at,
        finished_at=r.finished_at,
        duration_s=(r.finished_at - r.started_at).total_seconds(),
    )


@router.post(
    "/pipelines",
    status_code=201,
    response_model=PipelineOut,
    summary="Run a pipeline: build, deploy, boot, test",
    description="Checked before anything runs: 422 naming the field when no build server could build "
    "the architecture, a path or test is malformed. Follow it on `/events?topic=pipeline:<id>&log_offset=0`.",
    operation_id="create_pipeline",
)
async def create_pipeline(
    request: Request,
    response: Response,
    session: SessionDep,
    actor: Operator,
    policy: BuildPolicyDep,
    data: PipelineCreate,
) -> PipelineOut:
    p = await pipelines.submit(session=session, actor=actor, policy=policy, data=data)
    await session.commit()
    await _announce(request, session, p.id)  # a worker wakes for it
    out = await render_pipeline(session, p, api_base(request))
    response.headers["Location"] = out.url
    return out


@router.get(
    "/pipelines", response_model=Page[PipelineOut], summary="List pipelines", operation_id="list_pipelines"
)
async def list_pipelines(
    request: Request,
    session: SessionDep,
    _: Viewer,
    status: Annotated[str | None, Query(max_length=16)] = None,
    repository_url: Annotated[str | None, Query(max_length=1024)] = None,
    branch: Annotated[str | None, Query(max_length=255)] = None,
    architecture: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[PipelineOut]:
    filters = {
        "status": status,
        "repository_url": repository_url,
        "branch": branch,
        "architecture": architecture,
    }
    total, rows = await pipelines.search(session=session, filters=filters, limit=limit, offset=offset)
    base = api_base(request)
    return Page(count=total, items=[await render_pipeline(session, p, base) for p in rows])


@router.get(
    "/pipelines/stats",
    response_model=Page[PipelineStatsRow],
    summary="Success rates by repository, branch and architecture",
    operation_id="pipeline_stats",
)
async def pipeline_stats(
    session: SessionDep,
    _: Viewer,
    repository_url: Annotated[str | None, Query(max_length=1024)] = None,
    branch: Annotated[str | None, Query(max_length=255)] = None,
    architecture: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[PipelineStatsRow]:
    rows = await pipelines.statistics(
        session=session,
        filters={"repository_url": repository_url, "branch": branch, "architecture": architecture},
    )
    return Page(count=len(rows), items=[PipelineStatsRow(**r) for r in rows])


@router.get(
    "/pipelines/{id}",
    response_model=PipelineOut,
    summary="A pipeline: stages, test results",
    operation_id="get_pipeline",
    responses=responses(404),
)
async def get_pipeline(request: Request, session: SessionDep, _: Viewer, ident: Ident) -> PipelineOut:
    p = await pipelines.get(session=session, ident=ident)
    return await render_pipeline(session, p, api_base(request))


async def _announce(request: Request, session: SessionDep, ident: int) -> None:
    bus: EventBus = request.app.state.bus
    await pipelines.announce(session, bus, ident)


@router.post(
    "/pipelines/{id}/cancel",
    status_code=202,
    response_model=PipelineOut,
    summary="Cancel a pipeline; what it holds is released",
    operation_id="cancel_pipeline",
    responses=responses(404, 409),
)
async def cancel_pipeline(
    request: Request, session: SessionDep, actor: Operator, ident: Ident
) -> PipelineOut:
    p = await pipelines.cancel(session=session, actor=actor, ident=ident)
    await session.commit()
    await _announce(request, session, ident)
    return await render_pipeline(session, p, api_base(request))


@router.post(
    "/pipelines/{id}/retry",
    status_code=202,
    response_model=PipelineOut,
    summary="Run a stopped pipeline again from the stage that stopped it",
    operation_id="retry_pipeline",
    responses=responses(404, 409),
)
async def retry_pipeline(
    request: Request, session: SessionDep, actor: Operator, ident: Ident, data: StageRetry
) -> PipelineOut:
    p = await pipelines.retry(session=session, actor=actor, ident=ident, stage=data.stage)
    await session.commit()
    await _announce(request, session, ident)
    return await render_pipeline(session, p, api_base(request))


@router.get(
    "/pipelines/{id}/logs",
    response_model=PipelineLogOut,
    summary="The pipeline's log (or one stage's part of it) from a byte offset",
    operation_id="pipeline_logs",
    responses=responses(404),
)
async def pipeline_logs(
    session: SessionDep,
    _: Viewer,
    ident: Ident,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=pipelines.LOG_READ_LIMIT)] = 65536,
    stage: Annotated[str | None, Query(max_length=16)] = None,
) -> PipelineLogOut:
    start, size, data, complete = await pipelines.read_log(
        session=session, ident=ident, offset=offset, limit=limit, stage=stage
    )
    text = data if complete else complete_utf8(data)
    return PipelineLogOut(
        offset=start,
        size=size,
        next_offset=start + len(text),
        complete=complete and start + len(text) >= size,
        data=text.decode("utf-8", "replace"),
    )
