"""Queries on power actions, and the board status changes a power cycle makes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, PowerAction
from labfleet.db.models.power import CYCLE, FAILED, OFF, ON, RUNNING, SUCCEEDED

_NO_SYNC = {"synchronize_session": False}


async def add_running(session: AsyncSession, action: PowerAction) -> bool:
    """Insert a running action; False when the board has one running already (the unique index)."""
    try:
        async with session.begin_nested():
            session.add(action)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def get(session: AsyncSession, action_id: int) -> PowerAction | None:
    return await session.get(PowerAction, action_id, populate_existing=True)


async def running_for(session: AsyncSession, board_id: int) -> PowerAction | None:
    stmt = select(PowerAction).where(PowerAction.board_id == board_id, PowerAction.status == RUNNING)
    return (await session.scalars(stmt.execution_options(populate_existing=True))).first()


async def fail_running(
    session: AsyncSession,
    *,
    reason: str,
    now: datetime,
    board_id: int | None = None,
    past_deadline: bool = True,
    holders: Collection[str] | None = None,
) -> list[int]:
    """Fail running actions that nobody will finish: past their deadline, or of the given board
    (and holders). Each gets ``reason`` followed by the process that held it."""
    conditions: list[ColumnElement[bool]] = [PowerAction.status == RUNNING]
    if past_deadline:
        conditions.append(PowerAction.deadline_at < now)
    if board_id is not None:
        conditions.append(PowerAction.board_id == board_id)
    if holders is not None:
        conditions.append(PowerAction.holder.in_(list(holders)))
    stmt = (
        update(PowerAction)
        .where(*conditions)
        .values(
            status=FAILED,
            finished_at=now,
            error=literal(reason + " (process ") + PowerAction.holder + literal(")"),
        )
        .returning(PowerAction.id)
        .execution_options(**_NO_SYNC)
    )
    return list((await session.scalars(stmt)).all())


async def finish(
    session: AsyncSession, *, action_id: int, holder: str, values: dict[str, Any]
) -> PowerAction | None:
    """Record the end of an action this process holds; None if it is no longer running as ours."""
    stmt = (
        update(PowerAction)
        .where(PowerAction.id == action_id, PowerAction.status == RUNNING, PowerAction.holder == holder)
        .values(values)
        .returning(PowerAction.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    return await session.get(PowerAction, action_id, populate_existing=True)


async def history(
    session: AsyncSession,
    *,
    board_id: int,
    actions: Sequence[str] = (),
    statuses: Sequence[str] = (),
    limit: int,
    offset: int,
) -> tuple[int, list[PowerAction]]:
    """A board's actions, newest first, and how many match."""
    conditions: list[ColumnElement[bool]] = [PowerAction.board_id == board_id]
    if actions:
        conditions.append(PowerAction.action.in_(list(actions)))
    if statuses:
        conditions.append(PowerAction.status.in_(list(statuses)))
    total = await session.scalar(select(func.count()).select_from(PowerAction).where(*conditions))
    rows = await session.scalars(
        select(PowerAction)
        .where(*conditions)
        .order_by(PowerAction.id.desc())
        .limit(limit)
        .offset(offset)
        .execution_options(populate_existing=True)
    )
    return int(total or 0), list(rows.all())


async def last_switched(session: AsyncSession, board_id: int) -> PowerAction | None:
    """The board's last action that left its power in a known state: on, off or a cycle."""
    stmt = (
        select(PowerAction)
        .where(
            PowerAction.board_id == board_id,
            PowerAction.action.in_([ON, OFF, CYCLE]),
            PowerAction.status == SUCCEEDED,
        )
        .order_by(PowerAction.id.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def board_status(session: AsyncSession, board_id: int) -> str | None:
    return await session.scalar(select(Board.status).where(Board.id == board_id))


async def set_board_status(
    session: AsyncSession, *, board_id: int, status: str, when_in: Collection[str]
) -> str | None:
    """Move the board to ``status`` if it is in one of ``when_in``; the status it had, or None."""
    before = await session.scalar(select(Board.status).where(Board.id == board_id))
    if before is None or before == status or before not in when_in:
        return None
    stmt = (
        update(Board)
        .where(Board.id == board_id, Board.status == before)
        .values(status=status)
        .returning(Board.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return None
    return before
