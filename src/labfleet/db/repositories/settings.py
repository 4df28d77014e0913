"""The settings row."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import LabSettingsRow


async def get(session: AsyncSession, *, for_update: bool = False) -> LabSettingsRow | None:
    stmt = select(LabSettingsRow).where(LabSettingsRow.id == 1)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def version(session: AsyncSession) -> int:
    """0 while nothing was ever stored."""
    found = await session.scalar(select(LabSettingsRow.version).where(LabSettingsRow.id == 1))
    return int(found or 0)
