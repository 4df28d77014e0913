"""The writes of periodic health checks, shared by QEMU hosts and build servers.

Every write is conditional and none follows a read. A check is not an edit: ``updated_at``
is named in every statement so that its onupdate does not fire and it keeps the time of
the last change people made. Each function takes the checked model (``Host`` or
``BuildServer``): both keep ``status``, ``checked_at``, ``check_failures`` and
``last_check_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from labfleet.db.models import BuildServer, Host

Checked = type[Host] | type[BuildServer]
"""A model whose rows are health-checked."""

_NO_SYNC = {"synchronize_session": False}
ONLINE = "online"
OFFLINE = "offline"
DEGRADED = "degraded"
DECOMMISSIONED = "decommissioned"


async def claim_due(
    session: AsyncSession,
    model: Checked,
    *,
    now: datetime,
    min_gap: float,
    returning: Sequence[InstrumentedAttribute[Any]],
) -> Sequence[Any]:
    """Rows not decommissioned whose last check is older than ``min_gap`` seconds, marked
    checked now (so that other processes skip them); ``returning`` each."""
    stmt = (
        update(model)
        .where(
            model.status != DECOMMISSIONED,
            or_(model.checked_at.is_(None), model.checked_at <= now - timedelta(seconds=min_gap)),
        )
        .values(checked_at=now, updated_at=model.updated_at)
        .returning(*returning)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).all()


async def record_answer(
    session: AsyncSession,
    model: Checked,
    *,
    ident: int,
    capacity: dict[str, Any],
    problems: str | None,
    now: datetime,
) -> str | None:
    """Capacity refreshed, failures reset; the status before, or None if gone or decommissioned."""
    stmt = (
        update(model)
        .where(model.id == ident, model.status != DECOMMISSIONED)
        .values(
            **capacity,
            checked_at=now,
            check_failures=0,
            last_check_error=problems,
            updated_at=model.updated_at,
        )
        .returning(model.status)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def bring_back_online(session: AsyncSession, model: Checked, *, ident: int) -> bool:
    """An ``offline`` row that answered is ``online`` again; other statuses stay."""
    stmt = (
        update(model)
        .where(model.id == ident, model.status == OFFLINE)
        .values(status=ONLINE)
        .returning(model.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def record_failure(
    session: AsyncSession, model: Checked, *, ident: int, error: str, now: datetime
) -> tuple[int, str] | None:
    """One more failed check in a row: (failures in a row, status), or None if gone or decommissioned."""
    stmt = (
        update(model)
        .where(model.id == ident, model.status != DECOMMISSIONED)
        .values(
            check_failures=model.check_failures + 1,
            last_check_error=error,
            checked_at=now,
            updated_at=model.updated_at,
        )
        .returning(model.check_failures, model.status)
        .execution_options(**_NO_SYNC)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


async def take_offline(session: AsyncSession, model: Checked, *, ident: int) -> bool:
    """An ``online`` or ``degraded`` row goes ``offline``; maintenance stays as it is."""
    stmt = (
        update(model)
        .where(model.id == ident, model.status.in_((ONLINE, DEGRADED)))
        .values(status=OFFLINE)
        .returning(model.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
