"""Build jobs: submit with a placement decision, find, cancel, retry, read logs (R3, R13.1, R13.5).

A submitted job is a durable row; a worker (``labfleet.engine``) claims it with a lease
and runs it. Like every service this flushes and never commits; the edges commit, then
``announce`` the change on the event bus so that sleeping workers and watchers learn at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import BuildJob
from labfleet.db.models.builds import QUEUED, RUNNING
from labfleet.db.repositories import builds as repo
from labfleet.errors import Conflict, Gone, Invalid, NotFound
from labfleet.schemas.auth import Actor
from labfleet.schemas.builds import BuildJobCreate
from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection import (
    BuildRequest,
    BuildServerCandidate,
    Decision,
    DurationSample,
    EstimateModel,
    Outcome,
    Thresholds,
    estimated_start,
    select_build_server,
)
from labfleet.services.core import audit
from labfleet.services.core.events import EventBus

OBJECT_TYPE = "build_job"
TOPIC_ALL = "build-jobs"
LOG_READ_LIMIT = 1024 * 1024


def topic(job_id: int) -> str:
    return f"build-job:{job_id}"


@dataclass(frozen=True, slots=True)
class BuildPolicy:
    """How builds are placed and run; from ``Settings`` (``LABFLEET_BUILD_*``)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 10.0
    max_attempts: int = 3


# -- placement


def candidate(row: repo.ServerRow) -> BuildServerCandidate:
    s = row.server
    return BuildServerCandidate(
        id=s.id,
        name=s.hostname,
        status=ServerStatus(s.status),
        architectures=frozenset(Architecture(a) for a in row.architectures if a in Architecture.__members__),
        max_concurrent_builds=s.max_concurrent_builds,
        active_builds=row.running,
        queued_builds=row.queued,
        load_1m=s.load_1m,
        cpu_cores=s.cpu_cores,
        disk_free_gb=s.disk_free_gb,
        labels=row.labels,
    )


async def history(session: AsyncSession) -> EstimateModel:
    """Durations of past builds, for estimates (R13.1)."""
    samples = [
        DurationSample(server_id=s, architecture=Architecture(a), seconds=sec, repository=r)
        for s, a, r, sec in await repo.durations(session)
        if a in Architecture.__members__
    ]
    return EstimateModel.from_samples(samples)


async def _server_id(session: AsyncSession, choice: str) -> int | None:
    if choice == "auto":
        return None
    found = await (
        repo.server(session, int(choice)) if choice.isdigit() else repo.server_by_hostname(session, choice)
    )
    if found is None:
        raise Invalid(f"no build server {choice!r}; give `auto`, a hostname or an id", field="server")
    return found.id


async def place(
    *, session: AsyncSession, policy: BuildPolicy, architecture: str, server: str, repository: str | None
) -> Decision:
    """Where a build of ``architecture`` would go now, and why; ``Invalid`` when nowhere ever."""
    request = BuildRequest(
        architecture=Architecture(architecture),
        server_id=await _server_id(session, server),
        repository=repository,
    )
    rows = await repo.servers(session)
    decision = select_build_server(
        request=request,
        candidates=[candidate(r) for r in rows],
        thresholds=policy.thresholds,
        history=await history(session),
    )
    if decision.outcome is Outcome.rejected:
        assert decision.rejected is not None
        field = "server" if request.server_id is not None else "architecture"
        raise Invalid(decision.rejected.message, field=field)
    return decision


# -- submitting


def snapshot(job: BuildJob) -> dict[str, Any]:
    return {
        "repository_url": job.repository_url,
        "branch": job.branch,
        "commit": job.requested_commit,
        "architecture": job.architecture,
        "command": job.command,
        "defconfig": job.defconfig,
        "make_target": job.make_target,
        "artifacts": job.artifact_specs,
        "server": job.server_choice,
        "build_server_id": job.build_server_id,
        "priority": job.priority,
        "status": job.status,
        "retry_of_id": job.retry_of_id,
    }


async def submit(
    *, session: AsyncSession, actor: Actor, policy: BuildPolicy, data: BuildJobCreate
) -> BuildJob:
    """Queue a build, placed on a server now (or waiting for one); 422 if no server ever could."""
    decision = await place(
        session=session,
        policy=policy,
        architecture=data.architecture.value,
        server=data.server,
        repository=data.repository_url,
    )
    job = BuildJob(
        repository_url=data.repository_url,
        branch=data.branch,
        requested_commit=data.commit,
        architecture=data.architecture.value,
        command=data.command,
        defconfig=data.defconfig,
        make_target=data.make_target,
        artifact_specs=[
            {"path": a.path, "type": a.type.value, "name": a.artifact_name} for a in data.artifacts
        ],
        server_choice="auto" if data.server == "auto" else str(decision.explanation.request["server_id"]),
        build_server_id=decision.chosen.id if decision.chosen is not None else None,
        priority=data.priority,
        timeout_s=data.timeout_s,
        decision=decision.as_dict(),
        submitted_by=actor.name,
        team=actor.team,
    )
    return await _save(session, actor, job, action="create")


async def _save(session: AsyncSession, actor: Actor, job: BuildJob, *, action: str) -> BuildJob:
    session.add(job)
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action=action,
        object_type=OBJECT_TYPE,
        object_id=job.id,
        display=display(job),
        after=snapshot(job),
    )
    return job


def display(job: BuildJob) -> str:
    ref = job.branch or (job.requested_commit or "")[:12]
    return f"#{job.id} {job.architecture} {ref}"


def announce(bus: EventBus, job: BuildJob) -> None:
    """Tell watchers and workers that the job changed (call after the commit)."""
    event = status_event(job)
    bus.publish(topic(job.id), event)
    bus.publish(TOPIC_ALL, event)


def status_event(job: BuildJob) -> dict[str, Any]:
    return {
        "type": "status",
        "job": job.id,
        "status": job.status,
        "attempt": job.attempt,
        "build_server_id": job.build_server_id,
        "failure_reason": job.failure_reason,
        "log_size": job.log_size,
        "cancel_requested": job.cancel_requested_at is not None,
    }


# -- finding


async def get(*, session: AsyncSession, ident: int, refresh: bool = False) -> BuildJob:
    job = await repo.get(session, ident, refresh=refresh)
    if job is None:
        raise NotFound(f"no build job with id {ident}", field="id")
    return job


async def search(
    *,
    session: AsyncSession,
    statuses: list[str] | None = None,
    architecture: str | None = None,
    repository_url: str | None = None,
    branch: str | None = None,
    build_server_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[BuildJob]]:
    return await repo.page(
        session,
        statuses=statuses or (),
        architecture=architecture,
        repository_url=repository_url,
        branch=branch,
        build_server_id=build_server_id,
        limit=limit,
        offset=offset,
    )


async def server_names(session: AsyncSession) -> dict[int, str]:
    return {row.server.id: row.server.hostname for row in await repo.servers(session)}


async def estimated_starts(
    *, session: AsyncSession, now: datetime | None = None
) -> dict[int, datetime | None]:
    """When each queued job is expected to start (R3.5); None for one no server can take yet.

    Per server, the queue is simulated: its running builds free their slots after their
    expected remaining time, then its queued builds start in claim order, each taking the
    expected duration of a build of its architecture and repository there.
    """
    now = now or utcnow()
    jobs = await repo.active(session)
    rows = {r.server.id: r for r in await repo.servers(session)}
    model = await history(session)

    def duration(job: BuildJob, server_id: int) -> float:
        arch = Architecture(job.architecture) if job.architecture in Architecture.__members__ else None
        if arch is None:
            return model.default_s
        return model.estimate(server_id=server_id, architecture=arch, repository=job.repository_url).seconds

    running: dict[int, list[float]] = {}
    queued: dict[int, list[BuildJob]] = {}
    result: dict[int, datetime | None] = {}
    for job in jobs:
        if job.build_server_id is None or job.build_server_id not in rows:
            if job.status == QUEUED:
                result[job.id] = None
            continue
        if job.status == RUNNING:
            elapsed = (now - job.started_at).total_seconds() if job.started_at else 0.0
            running.setdefault(job.build_server_id, []).append(duration(job, job.build_server_id) - elapsed)
        else:
            queued.setdefault(job.build_server_id, []).append(job)
    for server_id, waiting in queued.items():
        server = rows[server_id].server
        takes = server.status in (ServerStatus.online, ServerStatus.degraded)
        ahead: list[float] = []
        for position, job in enumerate(waiting):
            if not takes:
                result[job.id] = None
                continue
            seconds = estimated_start(
                position=position,
                running_remaining_s=running.get(server_id, []),
                slots=server.max_concurrent_builds,
                ahead_durations_s=ahead,
            )
            result[job.id] = now + timedelta(seconds=seconds)
            ahead.append(duration(job, server_id))
    return result


# -- cancel and retry


async def cancel(*, session: AsyncSession, actor: Actor, ident: int) -> BuildJob:
    """A queued job is cancelled at once; a running one is stopped by its worker (remote process
    group killed, workspace removed) within a heartbeat, sooner when the event reaches it."""
    job = await get(session=session, ident=ident)
    now = utcnow()
    if job.status == RUNNING and job.cancel_requested_at is not None:
        return job  # asked already; the worker is on it
    # Either may lose a race with a worker claiming or finishing it: then try the other, or refuse.
    done = await repo.cancel_queued(session, job_id=ident, reason=f"cancelled by {actor.name}", now=now)
    if not done:
        done = await repo.request_cancel(session, job_id=ident, by=actor.name, now=now)
    if not done:
        job = await get(session=session, ident=ident, refresh=True)
        raise Conflict(f"build job {ident} is {job.status}; only queued or running jobs can be cancelled")
    job = await get(session=session, ident=ident, refresh=True)
    await audit.record(
        session=session,
        actor=actor,
        action="cancel",
        object_type=OBJECT_TYPE,
        object_id=job.id,
        display=display(job),
        after=snapshot(job),
    )
    return job


async def retry(*, session: AsyncSession, actor: Actor, policy: BuildPolicy, ident: int) -> BuildJob:
    """A new job doing the same build, linked to the old one (``retry_of_id``), placed afresh."""
    old = await get(session=session, ident=ident)
    if old.status in (QUEUED, RUNNING):
        raise Conflict(f"build job {ident} is still {old.status}; retry it once it has finished")
    decision = await place(
        session=session,
        policy=policy,
        architecture=old.architecture,
        server=old.server_choice,
        repository=old.repository_url,
    )
    job = BuildJob(
        repository_url=old.repository_url,
        branch=old.branch,
        requested_commit=old.requested_commit,
        architecture=old.architecture,
        command=old.command,
        defconfig=old.defconfig,
        make_target=old.make_target,
        artifact_specs=list(old.artifact_specs),
        server_choice=old.server_choice,
        build_server_id=decision.chosen.id if decision.chosen is not None else None,
        priority=old.priority,
        timeout_s=old.timeout_s,
        decision=decision.as_dict(),
        retry_of_id=old.id,
        attempt=old.attempt + 1,
        submitted_by=actor.name,
        team=actor.team,
    )
    return await _save(session, actor, job, action="retry")


# -- logs


@dataclass(frozen=True, slots=True)
class LogSlice:
    offset: int
    data: bytes
    size: int
    """The log's whole stored size so far."""
    status: str

    @property
    def complete(self) -> bool:
        """Nothing more will come: the job has finished and this slice reaches the end."""
        return self.status not in (QUEUED, RUNNING) and self.offset + len(self.data) >= self.size


async def read_log(
    *, session: AsyncSession, ident: int, offset: int = 0, limit: int = LOG_READ_LIMIT
) -> LogSlice:
    if offset < 0:
        raise Invalid("the offset is a byte position, 0 or more", field="offset")
    job = await get(session=session, ident=ident, refresh=True)
    if job.logs_pruned_at is not None:
        raise Gone(
            f"build {ident}'s log ({job.log_size} bytes) was removed by retention at "
            f"{job.logs_pruned_at.isoformat(timespec='seconds')}"
        )
    if offset > job.log_size:
        raise Invalid(f"the log has {job.log_size} bytes; offset {offset} is past its end", field="offset")
    start, data = await repo.read_log(session, job_id=ident, offset=offset, limit=limit)
    return LogSlice(offset=start, data=data, size=job.log_size, status=job.status)
