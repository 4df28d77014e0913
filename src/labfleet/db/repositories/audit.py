"""Queries on the audit log."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry


async def page(
    session: AsyncSession,
    *,
    object_type: str | None,
    object_id: int | None,
    limit: int,
    offset: int,
) -> tuple[int, list[AuditEntry]]:
    stmt = select(AuditEntry)
    if object_type is not None:
        stmt = stmt.where(AuditEntry.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(AuditEntry.object_id == object_id)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit).offset(offset))
    return int(total or 0), list(rows)
