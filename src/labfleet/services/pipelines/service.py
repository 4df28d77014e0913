"""Pipelines: build -> deploy -> boot -> test, as durable rows (R17).

``submit`` checks everything that can be checked before anything runs (a build server can
build the architecture, the artifact paths, the test plan) and writes the pipeline with
its four stages ``pending``; the pipeline worker (``engine/pipelines.py``) claims it under a
lease and runs the stages in order (``services/pipelines/stages.py``). One log per pipeline
(labfleet's lines, the build's output, the boot console, the tests' output), stored by
byte offset like a build's, each stage knowing its range of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Pipeline, PipelineStage, TestResult
from labfleet.db.models.pipelines import ACTIVE, CANCELLED, PENDING, QUEUED, RUNNING
from labfleet.db.repositories import pipelines as repo
from labfleet.errors import Conflict, Forbidden, Gone, Invalid, NotFound
from labfleet.schemas.auth import Actor
from labfleet.schemas.builds import BuildJobCreate
from labfleet.schemas.enums import Role
from labfleet.schemas.pipelines import STAGES, PipelineCreate
from labfleet.services.builds import service as builds
from labfleet.services.builds.logs import LogKind
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core import audit
from labfleet.services.core.events import EventBus
from labfleet.services.environments.kinds import KINDS
from labfleet.services.pipelines import progress

OBJECT_TYPE = "pipeline"
LOG_READ_LIMIT = 1024 * 1024
TOPIC_ALL = "pipelines"


def topic(pipeline_id: int) -> str:
    return f"pipeline:{pipeline_id}"


async def _read(session: AsyncSession, ident: int, offset: int, limit: int) -> bytes:
    return await repo.read_log(session, job_id=ident, offset=offset, limit=limit)


async def _state(session: AsyncSession, ident: int) -> tuple[int, str] | None:
    p = await repo.get(session, ident, refresh=True)
    return None if p is None else (p.log_size, p.status)


LOGS = LogKind(
    what="pipeline",
    key="pipeline",
    topic=topic,
    append=repo.append_log,
    read=_read,
    state=_state,
    active=ACTIVE,
    read_limit=LOG_READ_LIMIT,
)


def display(p: Pipeline) -> str:
    ref = p.branch or (p.requested_commit or "")[:12]
    return f"pipeline #{p.id} {p.architecture} {p.environment_type} {ref}"


def build_request(p: Pipeline | PipelineCreate) -> BuildJobCreate:
    """The build the pipeline's build stage submits (``{arch}`` in paths made the architecture's)."""
    if isinstance(p, PipelineCreate):
        spec = p.model_dump(mode="json")
        repository, branch, commit = p.repository_url, p.branch, p.commit
        arch = p.architecture.value
    else:
        spec = p.spec
        repository, branch, commit, arch = p.repository_url, p.branch, p.requested_commit, p.architecture
    build = spec["build"]
    return BuildJobCreate.model_validate(
        {
            "repository_url": repository,
            "branch": branch,
            "commit": commit,
            "architecture": arch,
            "command": build.get("command"),
            "defconfig": build.get("defconfig"),
            "make_target": build.get("make_target"),
            "artifacts": [
                {**a, "path": str(a["path"]).replace("{arch}", arch)} for a in build.get("artifacts", [])
            ],
            "server": spec.get("build_server", "auto"),
            "priority": spec.get("priority", 0),
            "timeout_s": build.get("timeout_s", 3600),
        }
    )


async def submit(
    *,
    session: AsyncSession,
    actor: Actor,
    policy: BuildPolicy,
    data: PipelineCreate,
    now: datetime | None = None,
) -> Pipeline:
    """Queue a pipeline; 422 naming the field when any part of it could never run. Flushes."""
    now = now or utcnow()
    try:
        request = build_request(data)
    except ValueError as exc:
        raise Invalid(f"the build: {exc}", field="build") from exc
    await builds.place(
        session=session,
        policy=policy,
        architecture=request.architecture.value,
        server=request.server,
        repository=request.repository_url,
    )
    lacks = KINDS[data.environment_type].build_lacks({a.type.value for a in request.artifacts})
    if lacks is not None:
        raise Invalid(lacks, field="build.artifacts")
    p = Pipeline(
        repository_url=data.repository_url,
        branch=data.branch,
        requested_commit=data.commit,
        architecture=data.architecture.value,
        environment_type=data.environment_type,
        spec=data.model_dump(mode="json"),
        status=QUEUED,
        submitted_by=actor.name,
        team=actor.team,
        created_at=now,
        log_size=0,
    )
    session.add(p)
    await session.flush()
    for position, name in enumerate(STAGES):
        session.add(
            PipelineStage(pipeline_id=p.id, position=position, name=name, status=PENDING, resources={})
        )
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=OBJECT_TYPE,
        object_id=p.id,
        display=display(p),
        after={"spec": p.spec, "status": p.status},
    )
    return p


# -- reading


async def get(*, session: AsyncSession, ident: int, refresh: bool = False) -> Pipeline:
    p = await repo.get(session, ident, refresh=refresh)
    if p is None:
        raise NotFound(f"no pipeline with id {ident}", field="id")
    return p


async def stages(session: AsyncSession, ident: int) -> list[PipelineStage]:
    return await repo.stages(session, ident)


async def latest_results(session: AsyncSession, stage_rows: list[PipelineStage]) -> list[TestResult]:
    test = next((s for s in stage_rows if s.name == "test"), None)
    if test is None or test.attempt == 0:
        return []
    return await repo.results(session, test.id, test.attempt)


async def search(
    *, session: AsyncSession, filters: dict[str, Any], limit: int, offset: int
) -> tuple[int, list[Pipeline]]:
    return await repo.search(session, filters=filters, limit=limit, offset=offset)


async def statistics(*, session: AsyncSession, filters: dict[str, Any]) -> list[dict[str, Any]]:
    rows = await repo.stats(session, filters=filters)
    for row in rows:
        decided = row["succeeded"] + row["failed"]
        row["success_rate"] = round(row["succeeded"] / decided, 4) if decided else None
    return rows


def status_event(p: Pipeline, stage_rows: list[PipelineStage], results: list[TestResult]) -> dict[str, Any]:
    running = next((s.name for s in stage_rows if s.status == RUNNING), None)
    return {
        "type": "status",
        "pipeline": p.id,
        "status": p.status,
        "stage": running,
        "error": p.error,
        "stages": [
            {
                "name": s.name,
                "status": s.status,
                "attempt": s.attempt,
                "started_at": s.started_at.isoformat() if s.started_at else None,
                "finished_at": s.finished_at.isoformat() if s.finished_at else None,
                "error": s.error,
                "resources": s.resources,
            }
            for s in stage_rows
        ],
        "tests": [{"name": r.name, "status": r.status, "exit_status": r.exit_status} for r in results],
    }


async def announce(session: AsyncSession, bus: EventBus | None, ident: int) -> None:
    """Tell followers the pipeline's state (call after the commit)."""
    if bus is None:
        return
    p = await get(session=session, ident=ident, refresh=True)
    rows = await stages(session, ident)
    event = status_event(p, rows, await latest_results(session, rows))
    bus.publish(topic(ident), event)
    bus.publish(TOPIC_ALL, event)


async def read_log(
    *, session: AsyncSession, ident: int, offset: int, limit: int, stage: str | None = None
) -> tuple[int, int, bytes, bool]:
    """``(offset, end, data, complete)`` of the pipeline's log, or of one stage's part of it."""
    p = await get(session=session, ident=ident, refresh=True)
    if p.logs_pruned_at is not None:
        raise Gone(
            f"pipeline {ident}'s log ({p.log_size} bytes) was removed by retention at "
            f"{p.logs_pruned_at.isoformat(timespec='seconds')}"
        )
    start, end = 0, p.log_size
    if stage is not None:
        if stage not in STAGES:
            raise Invalid(f"no stage {stage!r}; the stages are {', '.join(STAGES)}", field="stage")
        row = next(s for s in await stages(session, ident) if s.name == stage)
        if row.log_start is None:
            return offset, offset, b"", row.status not in (PENDING, RUNNING)
        start = row.log_start
        end = row.log_end if row.log_end is not None else p.log_size
    position = start + offset
    if offset > end - start:
        raise Invalid(f"offset {offset} is past the end of the log ({end - start} bytes)", field="offset")
    data = await repo.read_log(session, job_id=ident, offset=position, limit=min(limit, end - position))
    complete = p.status not in ACTIVE and position + len(data) >= end
    return offset, end - start, data, complete


# -- cancel and retry


def _may_change(actor: Actor, p: Pipeline) -> None:
    if actor.name != p.submitted_by and not actor.can(Role.admin):
        raise Forbidden(f"pipeline #{p.id} is {p.submitted_by}'s; only they or an admin may change it")


async def cancel(*, session: AsyncSession, actor: Actor, ident: int) -> Pipeline:
    """A queued pipeline is cancelled at once; a running one by its worker, which releases what
    it holds, within a heartbeat."""
    p = await get(session=session, ident=ident, refresh=True)
    _may_change(actor, p)
    now = utcnow()
    if p.status == QUEUED:
        progress.cancel(await stages(session, ident))
        p.status = CANCELLED
        p.finished_at = now
        p.error = f"cancelled by {actor.name} before it started"
        p.cancel_requested_at, p.cancel_requested_by = now, actor.name
        await repo.append_log_unheld(session, pipeline_id=ident, data=f"labfleet: {p.error}\n".encode())
    elif p.status == RUNNING:
        if p.cancel_requested_at is None:
            p.cancel_requested_at, p.cancel_requested_by = now, actor.name
    else:
        raise Conflict(f"pipeline #{ident} is {p.status}; only queued or running pipelines can be cancelled")
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="cancel",
        object_type=OBJECT_TYPE,
        object_id=p.id,
        display=display(p),
        after={"status": p.status},
    )
    return p


async def retry(*, session: AsyncSession, actor: Actor, ident: int, stage: str) -> Pipeline:
    """Run a finished pipeline again from the stage that stopped it; earlier results are kept."""
    p = await get(session=session, ident=ident, refresh=True)
    _may_change(actor, p)
    if p.status in ACTIVE:
        raise Conflict(f"pipeline #{ident} is still {p.status}; retry a stage once it has stopped")
    progress.retry_from(await stages(session, ident), stage)
    p.status = QUEUED
    p.error = None
    p.finished_at = None
    p.cancel_requested_at = p.cancel_requested_by = None
    await repo.append_log_unheld(
        session,
        pipeline_id=ident,
        data=f"labfleet: retrying from stage {stage}, asked by {actor.name}\n".encode(),
    )
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="retry",
        object_type=OBJECT_TYPE,
        object_id=p.id,
        display=display(p),
        after={"status": p.status, "stage": stage},
    )
    return p


# -- the worker's lease (engine/pipelines.py reaches the rows through these)

claim_next = repo.claim_next
beat = repo.beat
update_held = repo.update_held
