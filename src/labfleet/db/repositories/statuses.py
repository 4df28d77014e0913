"""Queries on the status tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import (
    BoardStatusChoice,
    BuildJobStatusChoice,
    BuildServerStatusChoice,
    HostStatusChoice,
)

_TABLES: dict[str, Any] = {
    "build_server": BuildServerStatusChoice,
    "host": HostStatusChoice,
    "board": BoardStatusChoice,
    "build_job": BuildJobStatusChoice,
}


async def all_choices(session: AsyncSession) -> dict[str, list[Any]]:
    return {
        kind: list(await session.scalars(select(model).order_by(model.position)))
        for kind, model in _TABLES.items()
    }
