"""What was sent where: deliveries, newest first, and each one's attempts."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.repositories import notifications as repo
from labfleet.errors import NotFound
from labfleet.schemas.notifications import AttemptOut, DeliveryDetail, DeliveryOut
from labfleet.schemas.query import ListQuery
from labfleet.services.notifications import rules


async def search(session: AsyncSession, query: ListQuery) -> tuple[int, list[DeliveryOut]]:
    total, rows = await repo.deliveries_page(
        session, fields=query.fields, limit=query.limit, offset=query.offset
    )
    events = await repo.events_by_id(session, {r.event_id for r in rows})
    names = {c.id: c.name for c in await repo.channels(session)}
    items = []
    for row in rows:
        event = events[row.event_id]
        items.append(
            DeliveryOut(
                id=row.id,
                event_id=row.event_id,
                alert_id=event.alert_id,
                event=event.event,
                channel_id=row.channel_id,
                channel=names.get(row.channel_id, ""),
                state=row.state,
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                created_at=row.created_at,
                delivered_at=row.delivered_at,
                last_error=row.last_error,
                idempotency_key=rules.key(row.event_id, row.channel_id),
            )
        )
    return total, items


async def get(session: AsyncSession, ident: int) -> DeliveryDetail:
    _, found = await search(session, ListQuery(limit=1, offset=0, fields={"id": ident}))
    if not found:
        raise NotFound(f"notification delivery {ident} does not exist")
    attempts = [
        AttemptOut.model_validate(a, from_attributes=True) for a in await repo.attempts(session, ident)
    ]
    return DeliveryDetail(**found[0].model_dump(), log=attempts)
