"""The writes of QEMU host health checks, each one conditional, and the utilization history.

The check statements are ``health_checks``'s, shared with build servers (``build_server_checks``):
a check is not an edit, so ``updated_at`` is named in every statement and keeps the time of
the last change people made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Environment, Host, Reservation, UtilizationSample
from labfleet.db.models.environments import ENV_HOLDING
from labfleet.db.repositories import health_checks
from labfleet.db.repositories.health_checks import DECOMMISSIONED, DEGRADED, OFFLINE, ONLINE
from labfleet.db.repositories.reservations import active
from labfleet.db.repositories.rows import affected

_NO_SYNC = {"synchronize_session": False}
_REACH = (Host.id, Host.hostname, Host.status, Host.libvirt_uri)


async def claim_due(session: AsyncSession, *, now: datetime, min_gap: float) -> Sequence[Any]:
    """Hosts not decommissioned whose last check is older than ``min_gap`` seconds, marked
    checked now (so that other processes skip them); with what is needed to reach each."""
    return await health_checks.claim_due(session, Host, now=now, min_gap=min_gap, returning=_REACH)


async def record_answer(
    session: AsyncSession, *, host_id: int, capacity: dict[str, Any], problems: str | None, now: datetime
) -> str | None:
    """Capacity refreshed, failures reset; the status before, or None if gone or decommissioned."""
    return await health_checks.record_answer(
        session, Host, ident=host_id, capacity=capacity, problems=problems, now=now
    )


async def bring_back_online(session: AsyncSession, *, host_id: int) -> bool:
    """An ``offline`` host that answered is ``online`` again; other statuses stay."""
    return await health_checks.bring_back_online(session, Host, ident=host_id)


async def record_failure(
    session: AsyncSession, *, host_id: int, error: str, now: datetime
) -> tuple[int, str] | None:
    """One more failed check in a row: (failures in a row, status), or None if gone or decommissioned."""
    return await health_checks.record_failure(session, Host, ident=host_id, error=error, now=now)


async def take_offline(session: AsyncSession, *, host_id: int) -> bool:
    """An ``online`` or ``degraded`` host goes ``offline``; maintenance stays as it is."""
    return await health_checks.take_offline(session, Host, ident=host_id)


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
    return affected(result)


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


async def environments_on(session: AsyncSession, *, host_id: int) -> list[tuple[int, int | None, str]]:
    """The environments that hold something on the host: (id, pipeline id, owner), oldest first."""
    stmt = (
        select(Environment.id, Environment.pipeline_id, Environment.owner)
        .where(Environment.host_id == host_id, Environment.status.in_(ENV_HOLDING))
        .order_by(Environment.id)
    )
    return [(int(i), None if p is None else int(p), str(o)) for i, p, o in await session.execute(stmt)]


__all__ = [
    "DECOMMISSIONED",
    "DEGRADED",
    "OFFLINE",
    "ONLINE",
    "add_sample",
    "bring_back_online",
    "claim_due",
    "environments_on",
    "holders",
    "last_running_vms",
    "prune_samples",
    "record_answer",
    "record_failure",
    "samples",
    "take_offline",
]
