"""The writes of build server health checks: each one conditional, none after a read.

The statements are ``health_checks``'s, shared with QEMU hosts (``host_checks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildServer
from labfleet.db.repositories import health_checks
from labfleet.db.repositories.health_checks import DECOMMISSIONED, DEGRADED, OFFLINE, ONLINE

_REACH = (
    BuildServer.id,
    BuildServer.hostname,
    BuildServer.status,
    BuildServer.address,
    BuildServer.ssh_port,
    BuildServer.ssh_user,
    BuildServer.ssh_secret,
    BuildServer.ssh_host_key,
)


async def claim_due(session: AsyncSession, *, now: datetime, min_gap: float) -> Sequence[Any]:
    """Servers not decommissioned whose last check is older than ``min_gap`` seconds, marked
    checked now (so other processes skip them); with what is needed to reach each."""
    return await health_checks.claim_due(session, BuildServer, now=now, min_gap=min_gap, returning=_REACH)


async def record_answer(
    session: AsyncSession, *, server_id: int, capacity: dict[str, Any], problems: str | None, now: datetime
) -> str | None:
    """Capacity refreshed, failures reset; the status before, or None if gone or decommissioned."""
    return await health_checks.record_answer(
        session, BuildServer, ident=server_id, capacity=capacity, problems=problems, now=now
    )


async def bring_back_online(session: AsyncSession, *, server_id: int) -> bool:
    """An ``offline`` server that answered is ``online`` again; other statuses stay."""
    return await health_checks.bring_back_online(session, BuildServer, ident=server_id)


async def record_failure(
    session: AsyncSession, *, server_id: int, error: str, now: datetime
) -> tuple[int, str] | None:
    """One more failed check in a row: (failures in a row, status), or None if gone or decommissioned."""
    return await health_checks.record_failure(session, BuildServer, ident=server_id, error=error, now=now)


async def take_offline(session: AsyncSession, *, server_id: int) -> bool:
    """An ``online`` or ``degraded`` server goes ``offline``; maintenance stays as it is."""
    return await health_checks.take_offline(session, BuildServer, ident=server_id)


__all__ = [
    "DECOMMISSIONED",
    "DEGRADED",
    "OFFLINE",
    "ONLINE",
    "bring_back_online",
    "claim_due",
    "record_answer",
    "record_failure",
    "take_offline",
]
