"""What a person does with an alert: look it up, acknowledge it, resolve it; each change audited.

Raising and resolving by labfleet itself (a condition seen or cleared) is ``core/alerts.py``'s.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Alert
from labfleet.db.repositories import alerts as repo
from labfleet.errors import Conflict, NotFound
from labfleet.schemas.alerts import AlertState
from labfleet.schemas.auth import Actor
from labfleet.schemas.query import ListQuery
from labfleet.services.core import alert_events, audit


async def search(session: AsyncSession, query: ListQuery) -> tuple[int, list[Alert]]:
    return await repo.page(session, fields=query.fields, limit=query.limit, offset=query.offset)


async def get(session: AsyncSession, alert_id: int, *, for_update: bool = False) -> Alert:
    alert = await repo.get(session, alert_id, for_update=for_update)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


def _snapshot(alert: Alert) -> dict[str, object]:
    return {"state": alert.state, "severity": alert.severity, "occurrences": alert.occurrences}


async def _change(
    session: AsyncSession,
    actor: Actor,
    alert: Alert,
    to: AlertState,
    comment: str | None,
    now: datetime | None,
) -> Alert:
    """Who, when and why go on the alert and in the audit log, in the caller's transaction."""
    before = _snapshot(alert)
    alert.state = to.value
    prefix = "acknowledged" if to == AlertState.acknowledged else "resolved"
    setattr(alert, f"{prefix}_by", actor.name)
    setattr(alert, f"{prefix}_at", now or utcnow())
    setattr(alert, f"{prefix}_comment", comment)
    alert_events.record(session, alert, to.value, actor=actor.name, comment=comment)
    await session.flush()
    await audit.record(
        session=session,
        actor=actor,
        action="acknowledge" if to == AlertState.acknowledged else "resolve",
        object_type="alert",
        object_id=alert.id,
        display=f"{alert.kind} on {alert.resource_kind} {alert.resource_id}",
        before=before,
        after={**_snapshot(alert), "comment": comment},
    )
    return alert


async def acknowledge(
    session: AsyncSession, actor: Actor, alert_id: int, comment: str | None, now: datetime | None = None
) -> Alert:
    """Someone is on it: the alert stays until its condition clears or someone resolves it."""
    alert = await get(session, alert_id, for_update=True)
    if alert.state != AlertState.open:
        by = alert.acknowledged_by if alert.state == AlertState.acknowledged else alert.resolved_by
        raise Conflict(
            f"alert {alert_id} is already {alert.state} (by {by}); only an open alert is acknowledged"
        )
    return await _change(session, actor, alert, AlertState.acknowledged, comment, now)


async def resolve(
    session: AsyncSession, actor: Actor, alert_id: int, comment: str | None, now: datetime | None = None
) -> Alert:
    """Closed by a person; if the condition is still there, the next check raises a new one."""
    alert = await get(session, alert_id, for_update=True)
    if alert.state == AlertState.resolved:
        raise Conflict(f"alert {alert_id} is already resolved (by {alert.resolved_by})")
    return await _change(session, actor, alert, AlertState.resolved, comment, now)
