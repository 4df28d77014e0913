"""Queries on alerts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert


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
