"""A board's alerts and the audit of its status changes, as power actions and flash jobs record them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.services.core import alerts, audit

RESOURCE_KIND = "board"
"""Boards' alerts and device locks are kept under this resource kind."""


async def raise_alert(
    session: AsyncSession,
    board_id: int,
    kind: str,
    message: str,
    *,
    now: datetime,
    severity: str = "critical",
) -> Alert:
    """Raise (or see once more) the board's open alert of ``kind``: critical unless said otherwise,
    since a board with an alert is one a job cannot trust."""
    return await alerts.raise_alert(
        session=session,
        resource_kind=RESOURCE_KIND,
        resource_id=board_id,
        kind=kind,
        severity=severity,
        message=message,
        now=now,
    )


async def resolve_alert(*, session: AsyncSession, board_id: int, kind: str, now: datetime) -> Alert | None:
    """Resolve the board's open alert of ``kind``, if it has one."""
    return await alerts.resolve_alert(
        session=session, resource_kind=RESOURCE_KIND, resource_id=board_id, kind=kind, now=now
    )


async def audit_update(
    *,
    session: AsyncSession,
    actor: Actor,
    board_id: int,
    name: str,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """Audit a change labfleet made to a board's row (its status, its firmware)."""
    await audit.record(
        session=session,
        actor=actor,
        action="update",
        object_type="board",
        object_id=board_id,
        display=name,
        before=before,
        after=after,
    )


async def audit_status(
    session: AsyncSession, actor: Actor, board_id: int, name: str, before: str, after: BoardStatus
) -> None:
    """Audit a board's status changed by labfleet from ``before`` to ``after``."""
    await audit_update(
        session=session,
        actor=actor,
        board_id=board_id,
        name=name,
        before={"status": before},
        after={"status": after.value},
    )
