"""Status choices (value, label, colour) of the collections that have a status table."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.repositories import statuses as repo


async def all_choices(*, session: AsyncSession) -> dict[str, list[Any]]:
    return await repo.all_choices(session)
