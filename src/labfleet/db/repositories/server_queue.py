"""The build queue as one build server sees it: the next job for a free slot of the server
(``claim_for_server``), and its running jobs when it goes offline (``requeue_server``).

The claim, lease and heartbeat mechanics these share are ``build_queue``'s.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import BuildJob, BuildServer
from labfleet.db.models.builds import CANCELLED, FAILED, QUEUED, RUNNING
from labfleet.db.repositories.build_queue import FAILED_OUTCOME, REQUEUED, claim_values, load_job

_NO_SYNC = {"synchronize_session": False}


async def claim_for_server(
    session: AsyncSession,
    *,
    server_id: int,
    architectures: Collection[str],
    worker: str,
    lease_seconds: float,
    disk_critical_gb: float,
    now: datetime | None = None,
) -> BuildJob | None:
    """Claim the next job for a free slot of one build server, or None.

    The server's row is written first: on PostgreSQL that locks it, so claims on one server
    queue up behind each other and never exceed ``max_concurrent_builds``; on SQLite it takes
    the write lock before anything is read. Then, if the server takes builds (online or
    degraded, not below the critical disk threshold) and has a free slot, the best queued
    job it may run is taken: one placed on it, or an ``auto`` one whose architecture it has
    a toolchain for. The job is then placed on it.
    """
    now = now or utcnow()
    slots = await _server_slots(session, server_id=server_id, disk_critical_gb=disk_critical_gb)
    if slots is None:
        return None
    running = await session.scalar(
        select(func.count()).where(BuildJob.build_server_id == server_id, BuildJob.status == RUNNING)
    )
    if (running or 0) >= slots:
        return None
    target = await _next_job(session, server_id=server_id, architectures=architectures)
    if target is None:
        return None
    values = {
        **claim_values(worker=worker, lease_seconds=lease_seconds, now=now),
        "build_server_id": server_id,
    }
    stmt = (
        update(BuildJob)
        .where(BuildJob.id == target, BuildJob.status == QUEUED)
        .values(values)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    claimed = (await session.execute(stmt)).scalar_one_or_none()
    return None if claimed is None else await load_job(session, claimed)


async def _server_slots(session: AsyncSession, *, server_id: int, disk_critical_gb: float) -> int | None:
    """Write the server's row if it takes builds; its ``max_concurrent_builds``, or None if it takes none."""
    takes_builds = (
        update(BuildServer)
        .where(
            BuildServer.id == server_id,
            BuildServer.status.in_(("online", "degraded")),
            or_(BuildServer.disk_free_gb.is_(None), BuildServer.disk_free_gb >= disk_critical_gb),
        )
        # A write that changes nothing (updated_at named, so its onupdate does not fire).
        .values(check_failures=BuildServer.check_failures, updated_at=BuildServer.updated_at)
        .returning(BuildServer.max_concurrent_builds)
        .execution_options(**_NO_SYNC)
    )
    slots: int | None = (await session.execute(takes_builds)).scalar_one_or_none()
    return slots


async def _next_job(session: AsyncSession, *, server_id: int, architectures: Collection[str]) -> Any:
    """The best queued job the server may run: on PostgreSQL its id, the row locked (None when
    there is none); on SQLite, which holds the write lock already, a subquery for it."""
    # Placed on it, or submitted for it alone (and waiting while it was unavailable).
    mine = or_(BuildJob.build_server_id == server_id, BuildJob.server_choice == str(server_id))
    portable = and_(BuildJob.server_choice == "auto", BuildJob.architecture.in_(list(architectures)))
    eligible = [BuildJob.status == QUEUED, BuildJob.cancel_requested_at.is_(None), or_(mine, portable)]
    order = (BuildJob.priority.desc(), BuildJob.queued_at, BuildJob.id)
    pick = select(BuildJob.id).where(*eligible).order_by(*order).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
        return (await session.execute(pick)).scalar_one_or_none()
    return pick.scalar_subquery()


async def requeue_server(
    session: AsyncSession, *, server_id: int, reason: str, max_attempts: int, now: datetime
) -> list[tuple[int, str]]:
    """The running jobs of a server that went offline: requeued, or failed past ``max_attempts``.

    Their holders lose their leases, so whatever they do next records nothing.
    """
    running = and_(BuildJob.build_server_id == server_id, BuildJob.status == RUNNING)
    cleared: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
    fail = (
        update(BuildJob)
        .where(running, or_(BuildJob.attempt >= max_attempts, BuildJob.cancel_requested_at.is_not(None)))
        .values(
            status=case((BuildJob.cancel_requested_at.is_not(None), CANCELLED), else_=FAILED),
            finished_at=now,
            failure_reason=reason,
            **cleared,
        )
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    failed: Sequence[int] = (await session.execute(fail)).scalars().all()
    requeue = (
        update(BuildJob)
        .where(running, BuildJob.attempt < max_attempts)
        .values(status=QUEUED, heartbeat_at=None, failure_reason=reason + "; requeued", **cleared)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    requeued: Sequence[int] = (await session.execute(requeue)).scalars().all()
    return sorted([(i, REQUEUED) for i in requeued] + [(i, FAILED_OUTCOME) for i in failed])
