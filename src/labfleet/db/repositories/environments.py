"""Queries on environments, and on the hosts and boards they are made on.

As with pipelines, a worker holds a standalone environment while the row names it in
``lease_owner`` with an unexpired ``lease_expires_at``; a claim takes one whose lease is free
or expired (its process died): that is how provisioning and teardown survive a restart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, Environment, Host
from labfleet.db.models.environments import (
    ENV_HOLDING,
    ENV_PENDING,
    ENV_PROVISIONING,
    ENV_READY,
    ENV_RELEASING,
)

_NO_SYNC = {"synchronize_session": False}


async def environment(session: AsyncSession, ident: int, *, refresh: bool = False) -> Environment | None:
    return await session.get(Environment, ident, populate_existing=refresh)


async def environments(
    session: AsyncSession, *, filters: dict[str, Any], limit: int, offset: int
) -> tuple[int, list[Environment]]:
    where = [getattr(Environment, k) == v for k, v in filters.items() if v is not None]
    count = await session.scalar(select(func.count()).select_from(Environment).where(*where))
    rows = await session.scalars(
        select(Environment).where(*where).order_by(Environment.id.desc()).limit(limit).offset(offset)
    )
    return int(count or 0), list(rows)


async def console_ports_in_use(session: AsyncSession, host_id: int) -> set[int]:
    stmt = select(Environment.console_port).where(
        Environment.host_id == host_id,
        Environment.status.in_(ENV_HOLDING),
        Environment.console_port.is_not(None),
    )
    return {int(p) for p in await session.scalars(stmt) if p is not None}


async def claim_environment(
    session: AsyncSession, *, worker: str, lease_seconds: float, now: datetime
) -> Environment | None:
    """A standalone environment to provision (pending) or tear down (releasing), whose lease is
    free or expired, now held by ``worker``."""
    free = Environment.lease_owner.is_(None) | (Environment.lease_expires_at < now)
    claimable = (
        Environment.pipeline_id.is_(None)
        & Environment.status.in_((ENV_PENDING, ENV_PROVISIONING, ENV_RELEASING))
        & free
    )
    pick = select(Environment.id).where(claimable).order_by(Environment.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ident = (await session.execute(pick)).scalar_one_or_none()
    if ident is None:
        return None
    stmt = (
        update(Environment)
        .where(Environment.id == ident, claimable)
        .values(lease_owner=worker, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Environment.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    return await environment(session, ident, refresh=True)


async def beat_environment(
    session: AsyncSession, *, env_id: int, worker: str, lease_seconds: float, now: datetime
) -> bool:
    stmt = (
        update(Environment)
        .where(Environment.id == env_id, Environment.lease_owner == worker)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Environment.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def expired_ready(session: AsyncSession, *, now: datetime) -> list[int]:
    """Standalone environments past their expiry that still hold something."""
    stmt = select(Environment.id).where(
        Environment.pipeline_id.is_(None), Environment.status == ENV_READY, Environment.expires_at < now
    )
    return list(await session.scalars(stmt))


async def host_named(session: AsyncSession, name: str) -> Host | None:
    return await session.scalar(select(Host).where(Host.hostname == name))


async def board_named(session: AsyncSession, name: str) -> Board | None:
    return await session.scalar(select(Board).where(Board.name == name))
