"""The writes of board health checks: each one conditional, none after a read.

A board's health lives in its ``board_health`` row (made here the first time the board is
checked); ``checked_at`` there is the time of its last check, answered or not, and is what
claiming a round of checks writes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from labfleet.db.models import Board, BoardHealth, HealthThreshold

_NO_SYNC = {"synchronize_session": False}
NOT_CHECKED = ("flashing", "decommissioned")


def _checked() -> Any:
    return select(Board.id).where(Board.status.not_in(NOT_CHECKED))


async def claim_due(session: AsyncSession, *, now: datetime, min_gap: float) -> list[int]:
    """Boards neither flashing nor decommissioned whose last check is older than ``min_gap``
    seconds, marked checked now (so that other processes skip them); their ids.

    Boards never checked get their health row first (``ON CONFLICT DO NOTHING``: another
    process may be making the same rows), so the first statement is a write too.
    """
    missing = select(Board.id, literal(0)).where(
        Board.status.not_in(NOT_CHECKED), ~Board.id.in_(select(BoardHealth.board_id))
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(BoardHealth)
        .from_select(["board_id", "consecutive_failures"], missing)
        .on_conflict_do_nothing(index_elements=["board_id"])
    )
    stmt = (
        update(BoardHealth)
        .where(
            BoardHealth.board_id.in_(_checked()),
            or_(BoardHealth.checked_at.is_(None), BoardHealth.checked_at <= now - timedelta(seconds=min_gap)),
        )
        .values(checked_at=now)
        .returning(BoardHealth.board_id)
        .execution_options(**_NO_SYNC)
    )
    return sorted(int(i) for i in (await session.execute(stmt)).scalars())


async def boards(session: AsyncSession, ids: Collection[int]) -> Sequence[Board]:
    """The boards, with their labels, by id."""
    if not ids:
        return []
    stmt = (
        select(Board)
        .where(Board.id.in_(ids))
        .options(selectinload(Board.labels))
        .order_by(Board.id)
        .execution_options(populate_existing=True)
    )
    return list((await session.scalars(stmt)).unique())


async def threshold(session: AsyncSession, *, metric: str) -> tuple[float, float] | None:
    """The lab-wide (no group) warning and critical levels of a board metric, if set."""
    row = (
        await session.execute(
            select(HealthThreshold.warning, HealthThreshold.critical).where(
                HealthThreshold.resource_kind == "board",
                HealthThreshold.metric == metric,
                HealthThreshold.group_id.is_(None),
            )
        )
    ).one_or_none()
    return None if row is None else (float(row[0]), float(row[1]))


def _health_update(board_id: int, values: dict[str, Any]) -> Update:
    """The update of a board's health row to ``values`` (the session's objects left as they are)."""
    return (
        update(BoardHealth)
        .where(BoardHealth.board_id == board_id)
        .values(**values)
        .execution_options(**_NO_SYNC)
    )


async def record_answer(
    session: AsyncSession,
    *,
    board_id: int,
    temperature_c: float | None,
    power_state: str | None,
    problems: str | None,
    now: datetime,
) -> bool:
    """Reachable, failures reset, recovery forgotten; what was measured kept (what was not
    keeps its last value). False if the board has no health row (gone)."""
    values: dict[str, Any] = {
        "reachable": True,
        "consecutive_failures": 0,
        "last_error": problems,
        "recovery_attempted_at": None,
        "checked_at": now,
    }
    if temperature_c is not None:
        values["temperature_c"] = temperature_c
    if power_state is not None:
        values["power_state"] = power_state
    stmt = _health_update(board_id, values).returning(BoardHealth.board_id)
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def record_failure(
    session: AsyncSession, *, board_id: int, error: str, power_state: str | None, now: datetime
) -> tuple[int, datetime | None] | None:
    """One more failed check in a row: (failures in a row, when recovery was tried), or None if gone."""
    values: dict[str, Any] = {
        "reachable": False,
        "consecutive_failures": BoardHealth.consecutive_failures + 1,
        "last_error": error,
        "checked_at": now,
    }
    if power_state is not None:
        values["power_state"] = power_state
    stmt = _health_update(board_id, values).returning(
        BoardHealth.consecutive_failures, BoardHealth.recovery_attempted_at
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (int(row[0]), row[1])


async def status(session: AsyncSession, board_id: int) -> str | None:
    return await session.scalar(select(Board.status).where(Board.id == board_id))


async def set_status(session: AsyncSession, *, board_id: int, status: str, when_in: Collection[str]) -> bool:
    """Move the board to ``status`` if it is in one of ``when_in``; whether it moved."""
    stmt = (
        update(Board)
        .where(Board.id == board_id, Board.status.in_(tuple(when_in)), Board.status != status)
        .values(status=status)
        .returning(Board.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def claim_recovery(session: AsyncSession, *, board_id: int, now: datetime) -> bool:
    """Take the board's one recovery attempt: only if none was tried since it last answered."""
    stmt = (
        update(BoardHealth)
        .where(BoardHealth.board_id == board_id, BoardHealth.recovery_attempted_at.is_(None))
        .values(recovery_attempted_at=now)
        .returning(BoardHealth.board_id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def release_recovery(session: AsyncSession, *, board_id: int, claimed_at: datetime) -> None:
    """Give back a recovery attempt that could not be made (the board was busy)."""
    await session.execute(
        update(BoardHealth)
        .where(BoardHealth.board_id == board_id, BoardHealth.recovery_attempted_at == claimed_at)
        .values(recovery_attempted_at=None)
        .execution_options(**_NO_SYNC)
    )


async def health(session: AsyncSession, board_id: int) -> BoardHealth | None:
    return await session.get(BoardHealth, board_id, populate_existing=True)
