"""The one writer of pipeline stage statuses (R17.2, R17.4; property 7).

Every change of a stage's status goes through here and follows the pure rules of
``stages.py``: the API's cancel and retry (in the caller's transaction), and the worker's
start, end, recovery and conclusion of a run (each a short transaction of its own, written
only while the worker still holds the pipeline's lease).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.models import PipelineStage, TestResult
from labfleet.db.models.pipelines import CANCELLED, FAILED, PENDING, RUNNING, SKIPPED
from labfleet.db.repositories import pipelines as repo
from labfleet.services.core.leases import LeaseLost
from labfleet.services.pipelines import stages as rules
from labfleet.services.pipelines.testing import Outcome

Sessions = async_sessionmaker[AsyncSession]


def apply(rows: Sequence[PipelineStage], statuses: Sequence[str]) -> None:
    for row, status in zip(rows, statuses, strict=True):
        row.status = status


def cancel(rows: Sequence[PipelineStage]) -> None:
    """Cancel at any point: the running stage cancelled, what has not run skipped."""
    apply(rows, rules.cancel([r.status for r in rows]))


def retry_from(rows: Sequence[PipelineStage], stage: str) -> None:
    """``stage`` and the stages after it pending again, their errors cleared."""
    _, statuses = rules.retry_from([r.status for r in rows], stage)
    for row, status in zip(rows, statuses, strict=True):
        if status == PENDING and row.status != PENDING:
            row.status, row.error, row.finished_at = PENDING, None, None


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage as the worker runs it."""

    id: int
    position: int
    name: str
    status: str
    resources: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Next:
    """What the worker does next: run ``stage``, or nothing (``None``); and who asked to cancel."""

    stage: Stage | None
    cancel_requested_by: str | None


def _stage(row: PipelineStage) -> Stage:
    return Stage(row.id, row.position, row.name, row.status, dict(row.resources))


async def interrupted(sessions: Sessions, pipeline_id: int) -> Stage | None:
    """The stage that was running when the pipeline's last worker stopped, if any."""
    async with sessions() as session:
        rows = await repo.stages(session, pipeline_id)
    return next((_stage(r) for r in rows if r.status == RUNNING), None)


async def next_stage(sessions: Sessions, pipeline_id: int) -> Next:
    async with sessions() as session:
        rows = await repo.stages(session, pipeline_id)
        p = await repo.get(session, pipeline_id, refresh=True)
    index = rules.next_to_run([r.status for r in rows])
    by = p.cancel_requested_by if p is not None and p.cancel_requested_at else None
    return Next(None if index is None else _stage(rows[index]), by)


async def cancel_rest(sessions: Sessions, pipeline_id: int) -> None:
    async with sessions() as session:
        cancel(await repo.stages(session, pipeline_id))
        await session.commit()


async def begin(sessions: Sessions, stage_id: int, *, log_start: int) -> tuple[int, dict[str, Any]]:
    """The stage running, one attempt more; its attempt and what it used before."""
    async with sessions() as session:
        row = await session.get(PipelineStage, stage_id, populate_existing=True)
        assert row is not None
        row.status, row.attempt, row.started_at = RUNNING, row.attempt + 1, utcnow()
        row.finished_at, row.error, row.log_start, row.log_end = None, None, log_start, None
        out = row.attempt, dict(row.resources)
        await session.commit()
    return out


async def end(
    sessions: Sessions,
    pipeline_id: int,
    position: int,
    outcome: str,
    *,
    error: str | None,
    log_end: int,
    resources: dict[str, Any] | None = None,
) -> None:
    """The running stage ended with ``outcome``; a failure or cancel skips the rest."""
    async with sessions() as session:
        rows = await repo.stages(session, pipeline_id)
        apply(rows, rules.finish([r.status for r in rows], position, outcome))
        row = rows[position]
        row.finished_at, row.error, row.log_end = utcnow(), error, log_end
        row.resources = {**row.resources, **(resources or {})}
        await session.commit()


async def add_resources(sessions: Sessions, stage_id: int, **values: Any) -> dict[str, Any]:
    """What the stage uses (build job, environment, host or board), added to what it had."""
    async with sessions() as session:
        row = await session.get(PipelineStage, stage_id, populate_existing=True)
        assert row is not None
        row.resources = {**row.resources, **values}
        out = dict(row.resources)
        await session.commit()
    return out


async def follow_build_again(sessions: Sessions, stage: Stage) -> None:
    """A build stage taken over: pending again, to follow the same (durable) build job."""
    async with sessions() as session:
        row = await session.get(PipelineStage, stage.id, populate_existing=True)
        assert row is not None
        row.status = PENDING
        await session.commit()


async def fail_internally(sessions: Sessions, pipeline_id: int, worker: str) -> None:
    """labfleet itself failed running it: the running stage failed, the rest skipped, and the pipeline."""
    async with sessions() as session:
        for r in await repo.stages(session, pipeline_id):
            if r.status == RUNNING:
                r.status, r.error = FAILED, "internal error in labfleet (see its log)"
            elif r.status == PENDING:
                r.status = SKIPPED
        values = {"status": FAILED, "error": "internal error in labfleet", "finished_at": utcnow()}
        await repo.update_held(session, pipeline_id=pipeline_id, worker=worker, values=values)
        await session.commit()


async def conclude(sessions: Sessions, pipeline_id: int) -> tuple[str, str | None]:
    """The pipeline's status from its stages', and the error of the stage that stopped it."""
    async with sessions() as session:
        rows = await repo.stages(session, pipeline_id)
    status = rules.overall([r.status for r in rows], claimed=True)
    stopped = next((r for r in rows if r.status in (FAILED, CANCELLED)), None)
    error = f"stage {stopped.name} {stopped.status}: {stopped.error}" if stopped else None
    if status == RUNNING:  # nothing left to run, yet not all succeeded: cannot happen
        status, error = FAILED, "stages left in an inconsistent state"
    return status, error


async def finish(sessions: Sessions, pipeline_id: int, worker: str, status: str, error: str | None) -> None:
    """The pipeline ended: its status written and its lease given up."""
    values = {
        "status": status,
        "error": error,
        "finished_at": utcnow(),
        "lease_owner": None,
        "lease_expires_at": None,
    }
    async with sessions() as session:
        await repo.update_held(session, pipeline_id=pipeline_id, worker=worker, values=values)
        await session.commit()


async def give_up_lease(sessions: Sessions, pipeline_id: int, worker: str) -> None:
    """Let the lease run out now, so that another process takes the pipeline over at once."""
    async with sessions() as session:
        await repo.update_held(
            session, pipeline_id=pipeline_id, worker=worker, values={"lease_expires_at": utcnow()}
        )
        await session.commit()


async def set_held(session: AsyncSession, pipeline_id: int, worker: str, **values: Any) -> None:
    """Write ``values`` on the pipeline while ``worker`` holds it; ``LeaseLost`` once it does not."""
    if not await repo.update_held(session, pipeline_id=pipeline_id, worker=worker, values=values):
        raise LeaseLost(f"pipeline {pipeline_id}: no longer held by {worker}")


async def record_test(
    sessions: Sessions, pipeline_id: int, stage_id: int, attempt: int, outcome: Outcome
) -> None:
    async with sessions() as session:
        session.add(
            TestResult(
                pipeline_id=pipeline_id,
                stage_id=stage_id,
                attempt=attempt,
                position=outcome.position,
                name=outcome.case.name,
                command=outcome.case.command,
                status=outcome.status,
                exit_status=outcome.exit_status,
                output=outcome.output[-65536:],
                started_at=outcome.started,
                finished_at=utcnow(),
            )
        )
        await session.commit()
