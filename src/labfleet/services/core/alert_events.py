"""The outbox of alert changes: what is to be told, written with the change itself.

Every change worth telling people (an alert raised, escalated to a higher severity,
acknowledged, resolved) adds an ``AlertEvent`` in the caller's transaction: the change and
its notice commit together or not at all. A repeat of an open alert at the same severity
is not news and adds nothing. ``services/notifications`` publishes and delivers them.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert, AlertEvent
from labfleet.schemas.alerts import Severity

RANK = {Severity.info: 0, Severity.warning: 1, Severity.critical: 2}


def rank(severity: str) -> int:
    return RANK.get(Severity(severity), 0)


def record(
    session: AsyncSession,
    alert: Alert,
    event: str,
    *,
    actor: str | None = None,
    comment: str | None = None,
) -> AlertEvent:
    """Add the notice of ``event`` on ``alert`` as it is now; the caller flushes and commits."""
    row = AlertEvent(
        alert_id=alert.id,
        event=event,
        severity=alert.severity,
        resource_kind=alert.resource_kind,
        resource_id=alert.resource_id,
        kind=alert.kind,
        message=alert.message,
        actor=actor,
        comment=comment,
    )
    session.add(row)
    return row
