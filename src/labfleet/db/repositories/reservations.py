"""Queries on reservations: the capacity a host has promised, the one holder of a board.

Reserving locks the host's or board's row first (``FOR UPDATE`` on PostgreSQL; on SQLite
every transaction already holds the write lock from its start), so that two processes
checking the same capacity at once are served one after the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, Host, Reservation
from labfleet.db.repositories.paging import newest_first

_NO_SYNC = {"synchronize_session": False}


@dataclass(frozen=True, slots=True)
class Usage:
    vcpus: int
    memory_mb: int
    disk_gb: float
    count: int


def active(now: datetime) -> ColumnElement[bool]:
    """Held: neither released nor past its expiry (an expired one is released by the next sweep)."""
    return and_(Reservation.released_at.is_(None), Reservation.expires_at > now)


async def lock_host(session: AsyncSession, host_id: int) -> Host | None:
    return await session.scalar(
        select(Host)
        .where(Host.id == host_id)
        .with_for_update(of=Host)
        .execution_options(populate_existing=True)
    )


async def lock_board(session: AsyncSession, board_id: int) -> Board | None:
    return await session.scalar(
        select(Board)
        .where(Board.id == board_id)
        .with_for_update(of=Board)
        .execution_options(populate_existing=True)
    )


async def host_usage(session: AsyncSession, host_id: int, now: datetime) -> Usage:
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(Reservation.vcpus), 0),
                func.coalesce(func.sum(Reservation.memory_mb), 0),
                func.coalesce(func.sum(Reservation.disk_gb), 0.0),
                func.count(Reservation.id),
            ).where(Reservation.host_id == host_id, active(now))
        )
    ).one()
    return Usage(vcpus=int(row[0]), memory_mb=int(row[1]), disk_gb=float(row[2]), count=int(row[3]))


async def usage_by_host(session: AsyncSession, now: datetime) -> dict[int, Usage]:
    rows = await session.execute(
        select(
            Reservation.host_id,
            func.sum(Reservation.vcpus),
            func.sum(Reservation.memory_mb),
            func.sum(Reservation.disk_gb),
            func.count(Reservation.id),
        )
        .where(Reservation.host_id.is_not(None), active(now))
        .group_by(Reservation.host_id)
    )
    return {
        int(h): Usage(int(v or 0), int(m or 0), float(d or 0), int(n))
        for h, v, m, d, n in rows
        if h is not None
    }


async def held_boards(session: AsyncSession, now: datetime) -> set[int]:
    rows = await session.scalars(
        select(Reservation.board_id).where(Reservation.board_id.is_not(None), active(now))
    )
    return {int(b) for b in rows if b is not None}


async def holder_of_board(session: AsyncSession, board_id: int) -> Reservation | None:
    return await session.scalar(
        select(Reservation).where(Reservation.board_id == board_id, Reservation.released_at.is_(None))
    )


async def release_expired(
    session: AsyncSession, *, now: datetime, host_id: int | None = None, board_id: int | None = None
) -> Sequence[int]:
    """Release what expired (optionally on one host or board only); the ids released."""
    stmt = update(Reservation).where(Reservation.released_at.is_(None), Reservation.expires_at <= now)
    if host_id is not None:
        stmt = stmt.where(Reservation.host_id == host_id)
    if board_id is not None:
        stmt = stmt.where(Reservation.board_id == board_id)
    done = await session.execute(
        stmt.values(released_at=now, release_reason="expired")
        .returning(Reservation.id)
        .execution_options(**_NO_SYNC)
    )
    return list(done.scalars())


async def release(session: AsyncSession, *, ident: int, now: datetime, reason: str) -> bool:
    stmt = (
        update(Reservation)
        .where(Reservation.id == ident, Reservation.released_at.is_(None))
        .values(released_at=now, release_reason=reason)
        .returning(Reservation.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def extend(session: AsyncSession, *, ident: int, now: datetime, expires_at: datetime) -> bool:
    stmt = (
        update(Reservation)
        .where(Reservation.id == ident, active(now))
        .values(expires_at=expires_at)
        .returning(Reservation.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def get(session: AsyncSession, ident: int) -> Reservation | None:
    return await session.get(Reservation, ident, populate_existing=True)


async def page(
    session: AsyncSession,
    *,
    now: datetime,
    only_active: bool,
    fields: Mapping[str, Any],
    limit: int,
    offset: int,
) -> tuple[int, list[Reservation]]:
    """Reservations whose columns equal ``fields``, newest first; only those held at ``now`` if asked."""
    where = [active(now)] if only_active else []
    return await newest_first(session, Reservation, fields=fields, where=where, limit=limit, offset=offset)


async def active_on(
    session: AsyncSession, *, now: datetime, host_id: int | None = None, board_id: int | None = None
) -> list[int]:
    stmt = select(Reservation.id).where(active(now))
    if host_id is not None:
        stmt = stmt.where(Reservation.host_id == host_id)
    if board_id is not None:
        stmt = stmt.where(Reservation.board_id == board_id)
    return list(await session.scalars(stmt.order_by(Reservation.id).limit(10)))
