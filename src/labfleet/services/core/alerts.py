"""Raising alerts, de-duplicated per resource and kind (R16.2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Alert
from labfleet.db.repositories import alerts as repo
from labfleet.services.core import alert_events


async def raise_alert(
    *,
    session: AsyncSession,
    resource_kind: str,
    resource_id: int,
    kind: str,
    severity: str,
    message: str,
    now: datetime | None = None,
) -> Alert:
    """The one unresolved alert for this resource and kind: a new one, or the open one seen once more."""
    now = now or utcnow()
    existing = await repo.unresolved(session, resource_kind=resource_kind, resource_id=resource_id, kind=kind)
    if existing is None:
        alert = Alert(
            resource_kind=resource_kind,
            resource_id=resource_id,
            kind=kind,
            severity=severity,
            message=message,
            first_seen_at=now,
            last_seen_at=now,
        )
        try:
            # In a SAVEPOINT: another process may raise the same alert at the same moment, and
            # the partial unique index lets only one of us insert it; the loser bumps the winner's.
            async with session.begin_nested():
                session.add(alert)
                await session.flush()
            alert_events.record(session, alert, "raised")
            await session.flush()
            return alert
        except IntegrityError:
            existing = await repo.unresolved(
                session, resource_kind=resource_kind, resource_id=resource_id, kind=kind
            )
            if existing is None:
                raise
    escalated = alert_events.rank(severity) > alert_events.rank(existing.severity)
    existing.occurrences += 1
    existing.last_seen_at = now
    existing.message = message
    existing.severity = severity
    if escalated:
        alert_events.record(session, existing, "escalated")
    await session.flush()
    return existing


async def resolve_alert(
    *,
    session: AsyncSession,
    resource_kind: str,
    resource_id: int,
    kind: str,
    by: str = "labfleet",
    now: datetime | None = None,
) -> Alert | None:
    """Resolve the open alert of this resource and kind, if there is one (its condition cleared)."""
    existing = await repo.unresolved(session, resource_kind=resource_kind, resource_id=resource_id, kind=kind)
    if existing is None:
        return None
    existing.state = "resolved"
    existing.resolved_by = by
    existing.resolved_at = now or utcnow()
    alert_events.record(session, existing, "resolved", actor=by)
    await session.flush()
    return existing
