"""Queries on the audit log."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry
from labfleet.db.repositories.paging import newest_first


async def page(
    session: AsyncSession,
    *,
    object_type: str | None,
    object_id: int | None,
    limit: int,
    offset: int,
) -> tuple[int, list[AuditEntry]]:
    fields = {"object_type": object_type, "object_id": object_id}
    return await newest_first(session, AuditEntry, fields=fields, limit=limit, offset=offset)
