"""Queries on alerts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert
from labfleet.db.repositories.paging import newest_first


async def unresolved(
    session: AsyncSession, *, resource_kind: str, resource_id: int, kind: str
) -> Alert | None:
    stmt = select(Alert).where(
        Alert.resource_kind == resource_kind,
        Alert.resource_id == resource_id,
        Alert.kind == kind,
        Alert.state != "resolved",
    )
    return (await session.scalars(stmt)).first()


async def page(
    session: AsyncSession, *, fields: dict[str, object], limit: int, offset: int
) -> tuple[int, list[Alert]]:
    return await newest_first(session, Alert, fields=fields, limit=limit, offset=offset)


async def get(session: AsyncSession, alert_id: int, *, for_update: bool = False) -> Alert | None:
    stmt = select(Alert).where(Alert.id == alert_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()
