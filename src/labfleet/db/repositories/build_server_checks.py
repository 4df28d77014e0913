"""The writes of build server health checks: each one conditional, none after a read.

A check is not an edit: ``updated_at`` is named in every statement so that its onupdate
does not fire and it keeps the time of the last change people made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildServer

_NO_SYNC = {"synchronize_session": False}
ONLINE = "online"
OFFLINE = "offline"
DEGRADED = "degraded"
DECOMMISSIONED = "decommissioned"


async def claim_due(session: AsyncSession, *, now: datetime, min_gap: float) -> Sequence[Any]:
    """Servers not decommissioned whose last check is older than ``min_gap`` seconds, marked
    checked now (so other processes skip them); with what is needed to reach each."""
    stmt = (
        update(BuildServer)
        .where(
            BuildServer.status != DECOMMISSIONED,
            or_(
                BuildServer.checked_at.is_(None),
                BuildServer.checked_at <= now - timedelta(seconds=min_gap),
            ),
        )
        .values(checked_at=now, updated_at=BuildServer.updated_at)
        .returning(
            BuildServer.id,
            BuildServer.hostname,
            BuildServer.status,
            BuildServer.address,
            BuildServer.ssh_port,
            BuildServer.ssh_user,
            BuildServer.ssh_secret,
            BuildServer.ssh_host_key,
        )
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).all()


async def record_answer(
    session: AsyncSession, *, server_id: int, capacity: dict[str, Any], problems: str | None, now: datetime
) -> str | None:
    """Capacity refreshed, failures reset; the status before, or None if gone or decommissioned."""
    stmt = (
        update(BuildServer)
        .where(BuildServer.id == server_id, BuildServer.status != DECOMMISSIONED)
        .values(
            **capacity,
            checked_at=now,
            check_failures=0,
            last_check_error=problems,
            updated_at=BuildServer.updated_at,
        )
        .returning(BuildServer.status)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def bring_back_online(session: AsyncSession, *, server_id: int) -> bool:
    """An ``offline`` server that answered is ``online`` again; other statuses stay."""
    stmt = (
        update(BuildServer)
        .where(BuildServer.id == server_id, BuildServer.status == OFFLINE)
        .values(status=ONLINE)
        .returning(BuildServer.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def record_failure(
    session: AsyncSession, *, server_id: int, error: str, now: datetime
) -> tuple[int, str] | None:
    """One more failed check in a row: (failures in a row, status), or None if gone or decommissioned."""
    stmt = (
        update(BuildServer)
        .where(BuildServer.id == server_id, BuildServer.status != DECOMMISSIONED)
        .values(
            check_failures=BuildServer.check_failures + 1,
            last_check_error=error,
            checked_at=now,
            updated_at=BuildServer.updated_at,
        )
        .returning(BuildServer.check_failures, BuildServer.status)
        .execution_options(**_NO_SYNC)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


async def take_offline(session: AsyncSession, *, server_id: int) -> bool:
    """An ``online`` or ``degraded`` server goes ``offline``; maintenance stays as it is."""
    stmt = (
        update(BuildServer)
        .where(BuildServer.id == server_id, BuildServer.status.in_((ONLINE, DEGRADED)))
        .values(status=OFFLINE)
        .returning(BuildServer.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
