"""Queries on pipelines, their stages, logs and test results.

As with builds and flash jobs, a worker holds a pipeline while the row names it in
``lease_owner`` with an unexpired ``lease_expires_at``; every change it makes is conditional
on exactly that, so a worker that lost its lease changes nothing any more. A claim takes a
queued row, or a running one whose lease expired (its process died): that is how work
survives a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Pipeline, PipelineLogChunk, PipelineStage, TestResult
from labfleet.db.models.pipelines import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED
from labfleet.db.repositories import log_chunks
from labfleet.db.repositories.paging import newest_first

_NO_SYNC = {"synchronize_session": False}


async def get(session: AsyncSession, ident: int, *, refresh: bool = False) -> Pipeline | None:
    return await session.get(Pipeline, ident, populate_existing=refresh)


async def stages(session: AsyncSession, pipeline_id: int) -> list[PipelineStage]:
    stmt = (
        select(PipelineStage)
        .where(PipelineStage.pipeline_id == pipeline_id)
        .order_by(PipelineStage.position)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(stmt))


async def results(session: AsyncSession, stage_id: int, attempt: int) -> list[TestResult]:
    stmt = (
        select(TestResult)
        .where(TestResult.stage_id == stage_id, TestResult.attempt == attempt)
        .order_by(TestResult.position)
    )
    return list(await session.scalars(stmt))


async def search(
    session: AsyncSession,
    *,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[int, list[Pipeline]]:
    return await newest_first(session, Pipeline, fields=filters, limit=limit, offset=offset)


async def stats(session: AsyncSession, *, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Pipelines by repository, branch and architecture: how many, and how many ended how."""

    def count(status: str) -> Any:
        return func.sum(case((Pipeline.status == status, 1), else_=0))

    where = [getattr(Pipeline, k) == v for k, v in filters.items() if v is not None]
    stmt = (
        select(
            Pipeline.repository_url,
            Pipeline.branch,
            Pipeline.architecture,
            func.count(),
            count(SUCCEEDED),
            count(FAILED),
            count(CANCELLED),
        )
        .where(*where)
        .group_by(Pipeline.repository_url, Pipeline.branch, Pipeline.architecture)
        .order_by(Pipeline.repository_url, Pipeline.branch, Pipeline.architecture)
    )
    out = []
    for repo, branch, arch, total, ok, failed, cancelled in await session.execute(stmt):
        out.append(
            {
                "repository_url": repo,
                "branch": branch,
                "architecture": arch,
                "total": int(total),
                "succeeded": int(ok or 0),
                "failed": int(failed or 0),
                "cancelled": int(cancelled or 0),
            }
        )
    return out


# -- the lease


def _held(pipeline_id: int, worker: str) -> list[ColumnElement[bool]]:
    return [Pipeline.id == pipeline_id, Pipeline.status == RUNNING, Pipeline.lease_owner == worker]


async def claim_next(
    session: AsyncSession, *, worker: str, lease_seconds: float, now: datetime
) -> tuple[Pipeline, str | None] | None:
    """The oldest queued pipeline, or a running one whose holder stopped heartbeating, now held
    by ``worker``; with the previous holder's name when it was taken over."""
    claimable = (Pipeline.status == QUEUED) | (
        (Pipeline.status == RUNNING) & (Pipeline.lease_expires_at < now)
    )
    pick = select(Pipeline.id, Pipeline.lease_owner).where(claimable).order_by(Pipeline.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    found = (await session.execute(pick)).first()
    if found is None:
        return None
    ident, previous = found
    stmt = (
        update(Pipeline)
        .where(Pipeline.id == ident, claimable)
        .values(
            status=RUNNING,
            lease_owner=worker,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            heartbeat_at=now,
            started_at=func.coalesce(Pipeline.started_at, now),
        )
        .returning(Pipeline.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    pipeline = await get(session, ident, refresh=True)
    assert pipeline is not None
    return pipeline, previous


async def beat(
    session: AsyncSession, *, pipeline_id: int, worker: str, lease_seconds: float, now: datetime
) -> Pipeline | None:
    """Renew the lease; the row (to see a cancel) or None when the lease is lost."""
    stmt = (
        update(Pipeline)
        .where(*_held(pipeline_id, worker), Pipeline.lease_expires_at >= now)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Pipeline.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    return await get(session, pipeline_id, refresh=True)


async def update_held(
    session: AsyncSession, *, pipeline_id: int, worker: str, values: dict[str, Any]
) -> bool:
    stmt = (
        update(Pipeline)
        .where(*_held(pipeline_id, worker))
        .values(**values)
        .returning(Pipeline.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


# -- the log


async def append_log(session: AsyncSession, *, job_id: int, worker: str, offset: int, data: bytes) -> bool:
    """Store a piece of the log at ``offset`` if ``worker`` still holds the pipeline; False if not."""
    stmt = (
        update(Pipeline)
        .where(*_held(job_id, worker), Pipeline.log_size == offset)
        .values(log_size=offset + len(data))
        .returning(Pipeline.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return False
    await session.execute(insert(PipelineLogChunk).values(pipeline_id=job_id, offset=offset, data=data))
    return True


async def append_log_unheld(session: AsyncSession, *, pipeline_id: int, data: bytes) -> int:
    """Append a line written by labfleet itself (a cancel, a recovery) to a pipeline nobody runs."""
    stmt = (
        update(Pipeline)
        .where(Pipeline.id == pipeline_id)
        .values(log_size=Pipeline.log_size + len(data))
        .returning(Pipeline.log_size)
        .execution_options(**_NO_SYNC)
    )
    end = int((await session.execute(stmt)).scalar_one())
    await session.execute(
        insert(PipelineLogChunk).values(pipeline_id=pipeline_id, offset=end - len(data), data=data)
    )
    return end - len(data)


async def read_log(session: AsyncSession, *, job_id: int, offset: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of the stored log from ``offset`` (which may fall inside a chunk)."""
    return await log_chunks.read(
        session,
        owner=PipelineLogChunk.pipeline_id == job_id,
        offset_column=PipelineLogChunk.offset,
        data_column=PipelineLogChunk.data,
        offset=offset,
        limit=limit,
    )
