"""The writes of QEMU host health checks, each one conditional, and the utilization history.

As for build servers (``build_server_checks``): a check is not an edit, so ``updated_at``
is named in every statement and keeps the time of the last change people made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Host, Reservation, UtilizationSample
from labfleet.db.repositories.reservations import active

_NO_SYNC = {"synchronize_session": False}
ONLINE = "online"
OFFLINE = "offline"
DEGRADED = "degraded"
DECOMMISSIONED = "decommissioned"


async def claim_due(session: AsyncSession, *, now: datetime, min_gap: float) -> Sequence[Any]:
    """Hosts not decommissioned whose last check is older than ``min_gap`` seconds, marked
    checked now (so that other processes skip them); with what is needed to reach each."""
    stmt = (
        update(Host)
        .where(
            Host.status != DECOMMISSIONED,
            or_(Host.checked_at.is_(None), Host.checked_at <= now - timedelta(seconds=min_gap)),
        )
        .values(checked_at=now, updated_at=Host.updated_at)
        .returning(Host.id, Host.hostname, Host.status, Host.libvirt_uri)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).all()


async def record_answer(
    session: AsyncSession, *, host_id: int, capacity: dict[str, Any], problems: str | None, now: datetime
) -> str | None:
    """Capacity refreshed, failures reset; the status before, or None if gone or decommissioned."""
    stmt = (
        update(Host)
        .where(Host.id == host_id, Host.status != DECOMMISSIONED)
        .values(
            **capacity,
            checked_at=now,
            check_failures=0,
            last_check_error=problems,
            updated_at=Host.updated_at,
        )
        .returning(Host.status)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def bring_back_online(session: AsyncSession, *, host_id: int) -> bool:
    """An ``offline`` host that answered is ``online`` again; other statuses stay."""
    stmt = (
        update(Host)
        .where(Host.id == host_id, Host.status == OFFLINE)
        .values(status=ONLINE)
        .returning(Host.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def record_failure(
    session: AsyncSession, *, host_id: int, error: str, now: datetime
) -> tuple[int, str] | None:
    """One more failed check in a row: (failures in a row, status), or None if gone or decommissioned."""
    stmt = (
        update(Host)
        .where(Host.id == host_id, Host.status != DECOMMISSIONED)
        .values(
            check_failures=Host.check_failures + 1,
            last_check_error=error,
            checked_at=now,
            updated_at=Host.updated_at,
        )
        .returning(Host.check_failures, Host.status)
        .execution_options(**_NO_SYNC)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


async def take_offline(session: AsyncSession, *, host_id: int) -> bool:
    """An ``online`` or ``degraded`` host goes ``offline``; maintenance stays as it is."""
    stmt = (
        update(Host)
        .where(Host.id == host_id, Host.status.in_((ONLINE, DEGRADED)))
        .values(status=OFFLINE)
        .returning(Host.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def add_sample(
    session: AsyncSession,
    *,
    host_id: int,
    taken_at: datetime,
    cpu_pct: float,
    memory_pct: float,
    storage_pct: float,
    running_vms: int,
) -> UtilizationSample:
    sample = UtilizationSample(
        host_id=host_id,
        taken_at=taken_at,
        cpu_pct=cpu_pct,
        memory_pct=memory_pct,
        storage_pct=storage_pct,
        running_vms=running_vms,
    )
    session.add(sample)
    await session.flush()
    return sample


async def prune_samples(session: AsyncSession, *, before: datetime) -> int:
    """Delete every utilization sample taken before ``before``; how many."""
    stmt = delete(UtilizationSample).where(UtilizationSample.taken_at < before).execution_options(**_NO_SYNC)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def samples(session: AsyncSession, *, host_id: int, limit: int = 1000) -> list[UtilizationSample]:
    """A host's samples, oldest first (the last ``limit``)."""
    stmt = (
        select(UtilizationSample)
        .where(UtilizationSample.host_id == host_id)
        .order_by(UtilizationSample.taken_at.desc(), UtilizationSample.id.desc())
        .limit(limit)
    )
    return list(reversed(list(await session.scalars(stmt))))


async def last_running_vms(session: AsyncSession, *, host_id: int) -> int | None:
    """VMs running at the host's last answered check, if it was ever sampled."""
    stmt = (
        select(UtilizationSample.running_vms)
        .where(UtilizationSample.host_id == host_id)
        .order_by(UtilizationSample.taken_at.desc(), UtilizationSample.id.desc())
        .limit(1)
    )
    value = await session.scalar(stmt)
    return None if value is None else int(value)


async def holders(session: AsyncSession, *, host_id: int, now: datetime) -> list[tuple[int, str]]:
    """The active reservations on the host: (id, owner), oldest first."""
    stmt = (
        select(Reservation.id, Reservation.owner)
        .where(Reservation.host_id == host_id, active(now))
        .order_by(Reservation.id)
    )
    return [(int(i), str(o)) for i, o in await session.execute(stmt)]
