"""Queries on the outbox, the channels and their deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from labfleet.db.models import AlertEvent, DeliveryAttempt, NotificationChannel, NotificationDelivery
from labfleet.db.models.notifications import DELIVERING, PENDING
from labfleet.db.repositories.paging import newest_first
from labfleet.db.repositories.rows import affected


async def unpublished(session: AsyncSession, *, limit: int) -> list[AlertEvent]:
    stmt = select(AlertEvent).where(AlertEvent.published_at.is_(None)).order_by(AlertEvent.id).limit(limit)
    return list(await session.scalars(stmt))


async def mark_published(session: AsyncSession, event_id: int, now: datetime) -> bool:
    """Take the event for publishing; False if another process already did."""
    result = await session.execute(
        update(AlertEvent)
        .where(AlertEvent.id == event_id, AlertEvent.published_at.is_(None))
        .values(published_at=now)
    )
    return affected(result) == 1


async def channels(session: AsyncSession, *, enabled_only: bool = False) -> list[NotificationChannel]:
    stmt = select(NotificationChannel).order_by(NotificationChannel.name)
    if enabled_only:
        stmt = stmt.where(NotificationChannel.enabled.is_(True))
    return list(await session.scalars(stmt))


async def channel(
    session: AsyncSession, *, ident: int | None = None, name: str | None = None, for_update: bool = False
) -> NotificationChannel | None:
    stmt = select(NotificationChannel)
    stmt = (
        stmt.where(NotificationChannel.id == ident)
        if ident is not None
        else stmt.where(NotificationChannel.name == name)
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


def _due(now: datetime) -> object:
    return or_(
        (NotificationDelivery.state == PENDING) & (NotificationDelivery.next_attempt_at <= now),
        (NotificationDelivery.state == DELIVERING) & (NotificationDelivery.lease_expires_at < now),
    )


async def due(session: AsyncSession, *, now: datetime, limit: int) -> list[int]:
    """Due deliveries, but for each channel an alert's changes in order: one waits while an
    earlier change of the same alert to the same channel is still to be delivered (a
    "resolved" never arrives before its "raised")."""
    this = aliased(AlertEvent)
    earlier, earlier_event = aliased(NotificationDelivery), aliased(AlertEvent)
    waiting = (
        select(earlier.id)
        .join(earlier_event, earlier_event.id == earlier.event_id)
        .where(
            earlier.channel_id == NotificationDelivery.channel_id,
            earlier.event_id < NotificationDelivery.event_id,
            earlier.state.in_((PENDING, DELIVERING)),
            earlier_event.alert_id == this.alert_id,
        )
    )
    stmt = (
        select(NotificationDelivery.id)
        .join(this, this.id == NotificationDelivery.event_id)
        .where(_due(now), ~waiting.exists())  # type: ignore[arg-type]
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


async def claim(
    session: AsyncSession, delivery_id: int, *, owner: str, now: datetime, lease: timedelta
) -> bool:
    """Take one due delivery under a lease, counting the attempt; False if it is no longer due."""
    result = await session.execute(
        update(NotificationDelivery)
        .where(NotificationDelivery.id == delivery_id, _due(now))  # type: ignore[arg-type]
        .values(
            state=DELIVERING,
            lease_owner=owner,
            lease_expires_at=now + lease,
            attempts=NotificationDelivery.attempts + 1,
        )
    )
    return affected(result) == 1


async def delivery(
    session: AsyncSession, ident: int, *, for_update: bool = False
) -> NotificationDelivery | None:
    stmt = select(NotificationDelivery).where(NotificationDelivery.id == ident)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def event(session: AsyncSession, ident: int) -> AlertEvent | None:
    return await session.get(AlertEvent, ident)


async def attempt(session: AsyncSession, delivery_id: int, number: int) -> DeliveryAttempt | None:
    stmt = select(DeliveryAttempt).where(
        DeliveryAttempt.delivery_id == delivery_id, DeliveryAttempt.number == number
    )
    return (await session.scalars(stmt.order_by(DeliveryAttempt.id.desc()))).first()


async def attempts(session: AsyncSession, delivery_id: int) -> list[DeliveryAttempt]:
    stmt = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
    return list(await session.scalars(stmt.order_by(DeliveryAttempt.id)))


async def deliveries_page(
    session: AsyncSession, *, fields: dict[str, object], limit: int, offset: int
) -> tuple[int, list[NotificationDelivery]]:
    return await newest_first(session, NotificationDelivery, fields=fields, limit=limit, offset=offset)


async def events_by_id(session: AsyncSession, ids: set[int]) -> dict[int, AlertEvent]:
    if not ids:
        return {}
    rows = await session.scalars(select(AlertEvent).where(AlertEvent.id.in_(ids)))
    return {row.id: row for row in rows}
