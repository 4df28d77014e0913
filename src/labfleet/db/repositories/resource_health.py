"""What the health and capacity views read: a host's latest sample, a resource's open alerts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert, BoardHealth, UtilizationSample


async def latest_sample(session: AsyncSession, host_id: int) -> UtilizationSample | None:
    stmt = (
        select(UtilizationSample)
        .where(UtilizationSample.host_id == host_id)
        .order_by(UtilizationSample.taken_at.desc(), UtilizationSample.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def open_alerts(session: AsyncSession, resource_kind: str, resource_id: int) -> list[Alert]:
    stmt = (
        select(Alert)
        .where(
            Alert.resource_kind == resource_kind, Alert.resource_id == resource_id, Alert.state != "resolved"
        )
        .order_by(Alert.id.desc())
    )
    return list(await session.scalars(stmt))


async def board_health(session: AsyncSession, board_id: int) -> BoardHealth | None:
    return await session.get(BoardHealth, board_id)
