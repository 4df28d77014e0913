"""What retention removes, in batches: each call takes at most ``limit`` rows, so that no
transaction grows with the history (the caller commits, and calls again while it removed
a full batch)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import (
    Alert,
    Artifact,
    AuditEntry,
    BuildJob,
    BuildLogChunk,
    FlashJob,
    Pipeline,
    PipelineLogChunk,
    PowerAction,
)
from labfleet.db.models.flashing import FINAL as FLASH_FINAL
from labfleet.db.models.flashing import SUCCEEDED as FLASH_SUCCEEDED
from labfleet.db.repositories.rows import affected


def _keeps_pinned(build_id: Any) -> Any:
    """Work whose build stored an artifact someone pinned keeps its log."""
    return ~exists().where(Artifact.build_job_id == build_id, Artifact.pinned.is_(True))


async def prune_build_logs(session: AsyncSession, *, before: datetime, now: datetime, limit: int) -> int:
    ids = list(
        await session.scalars(
            select(BuildJob.id)
            .where(
                BuildJob.finished_at < before,
                BuildJob.logs_pruned_at.is_(None),
                _keeps_pinned(BuildJob.id),
            )
            .order_by(BuildJob.id)
            .limit(limit)
        )
    )
    if ids:
        await session.execute(delete(BuildLogChunk).where(BuildLogChunk.build_job_id.in_(ids)))
        await session.execute(update(BuildJob).where(BuildJob.id.in_(ids)).values(logs_pruned_at=now))
    return len(ids)


async def prune_pipeline_logs(session: AsyncSession, *, before: datetime, now: datetime, limit: int) -> int:
    pinned_build = and_(Pipeline.build_job_id.is_not(None), ~_keeps_pinned(Pipeline.build_job_id))
    ids = list(
        await session.scalars(
            select(Pipeline.id)
            .where(Pipeline.finished_at < before, Pipeline.logs_pruned_at.is_(None), ~pinned_build)
            .order_by(Pipeline.id)
            .limit(limit)
        )
    )
    if ids:
        await session.execute(delete(PipelineLogChunk).where(PipelineLogChunk.pipeline_id.in_(ids)))
        await session.execute(update(Pipeline).where(Pipeline.id.in_(ids)).values(logs_pruned_at=now))
    return len(ids)


async def prune_power_actions(session: AsyncSession, *, before: datetime, limit: int) -> int:
    ids = select(PowerAction.id).where(PowerAction.finished_at < before).order_by(PowerAction.id).limit(limit)
    return affected(
        await session.execute(delete(PowerAction).where(PowerAction.id.in_(ids.scalar_subquery())))
    )


async def prune_flash_jobs(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Finished flash jobs past the age, but each board's last good flash (what runs on it)."""
    last_good = (
        select(func.max(FlashJob.id)).where(FlashJob.status == FLASH_SUCCEEDED).group_by(FlashJob.board_id)
    )
    ids = (
        select(FlashJob.id)
        .where(FlashJob.finished_at < before, FlashJob.status.in_(FLASH_FINAL), FlashJob.id.not_in(last_good))
        .order_by(FlashJob.id)
        .limit(limit)
    )
    return affected(await session.execute(delete(FlashJob).where(FlashJob.id.in_(ids.scalar_subquery()))))


async def prune_resolved_alerts(session: AsyncSession, *, before: datetime, limit: int) -> int:
    ids = (
        select(Alert.id)
        .where(Alert.state == "resolved", Alert.resolved_at < before)
        .order_by(Alert.id)
        .limit(limit)
    )
    return affected(await session.execute(delete(Alert).where(Alert.id.in_(ids.scalar_subquery()))))


async def old_audit_entries(session: AsyncSession, *, before: datetime, limit: int) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.at < before).order_by(AuditEntry.id).limit(limit)
    return list(await session.scalars(stmt))


async def delete_audit_entries(session: AsyncSession, *, up_to_id: int, before: datetime) -> int:
    stmt = delete(AuditEntry).where(AuditEntry.id <= up_to_id, AuditEntry.at < before)
    return affected(await session.execute(stmt))


async def audit_entries(
    session: AsyncSession, *, since: datetime | None, before: datetime | None, after_id: int, limit: int
) -> list[AuditEntry]:
    """Entries in id order from ``after_id``, for an export read page by page."""
    stmt = select(AuditEntry).where(AuditEntry.id > after_id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if before is not None:
        stmt = stmt.where(AuditEntry.at < before)
    return list(await session.scalars(stmt.order_by(AuditEntry.id).limit(limit)))
