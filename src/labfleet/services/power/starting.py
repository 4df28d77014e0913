"""Starting a power action, before the device is touched: whether the board may be acted on,
its running row (one per board: a unique index keeps two processes apart) and the audit of
what was asked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, PowerAction
from labfleet.db.repositories import power as repo
from labfleet.errors import Conflict
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.services.core import audit

OBJECT_TYPE = "power-action"

_REFUSING = {
    BoardStatus.flashing: "it is being flashed",
    BoardStatus.decommissioned: "it is decommissioned",
}


async def refuse_if_barred(session: AsyncSession, board: Board) -> None:
    """``Conflict`` when the board refuses power actions: being flashed, or decommissioned."""
    status = await repo.board_status(session, board.id)
    refusal = _REFUSING.get(BoardStatus(status)) if status is not None else None
    if refusal is not None:
        raise Conflict(f"board {board.name} refuses power actions: {refusal}", field="status")


async def with_last_switch(session: AsyncSession, board: Board, detail: dict[str, Any]) -> dict[str, Any]:
    """A state read's detail, naming the last switch made: a controller may not tell the state."""
    last = await repo.last_switched(session, board.id)
    if last is None:
        return detail
    return {
        **detail,
        "last_switched": {
            "action": last.id,
            "power_state": last.power_state,
            "at": (last.finished_at or last.started_at).isoformat(),
        },
    }


async def add_running(session: AsyncSession, board: Board, row: PowerAction) -> None:
    """Insert the running row; ``Conflict`` naming the action that runs on the board already."""
    if await repo.add_running(session, row):
        return
    other = await repo.running_for(session, board.id)
    doing = (
        f"power {other.action} #{other.id} by {other.requested_by} since {other.started_at:%H:%M:%S} UTC"
        if other is not None
        else "another power action"
    )
    raise Conflict(f"board {board.name} is busy: {doing} is running; try again when it has finished")


async def audit_asked(session: AsyncSession, actor: Actor, board: Board, row: PowerAction) -> None:
    await audit.record(
        session=session,
        actor=actor,
        action=f"power-{row.action}",
        object_type=OBJECT_TYPE,
        object_id=row.id,
        display=f"power {row.action} #{row.id} of board {board.name}",
        after={
            "board_id": row.board_id,
            "action": row.action,
            "status": row.status,
            "max_attempts": row.max_attempts,
            "detail": row.detail,
        },
    )
