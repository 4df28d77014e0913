"""Ending a power action: its row's result, then what follows for the board, in one commit.

A controller that failed raises a ``power-controller`` alert (resolved the next time it
answers); a cycle that saw no boot raises ``boot-failed`` and fails the board, one that
booted resolves it and brings a failed board back ``online``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Board, PowerAction
from labfleet.db.models.power import FAILED, SUCCEEDED
from labfleet.db.repositories import power as repo
from labfleet.errors import Busy, Timeout, Unreachable
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.services.power import records as board_records
from labfleet.services.power.outcome import Outcome

log = logging.getLogger(__name__)

BOOT_FAILED = "boot-failed"
POWER_CONTROLLER = "power-controller"

# A board that fails to boot is marked failed from these; one in maintenance stays there
# (an operator is on it), one being flashed or decommissioned is not touched.
_MAY_FAIL = frozenset({BoardStatus.online, BoardStatus.degraded, BoardStatus.offline})


async def record_end(
    *, session: AsyncSession, actor: Actor, board: Board, row: PowerAction, outcome: Outcome
) -> PowerAction:
    """Record the result, then what follows for the board's status and alerts; commit."""
    now = utcnow()
    values: dict[str, Any] = {
        "status": SUCCEEDED if outcome.ok else FAILED,
        "finished_at": now,
        "duration_s": round((now - row.started_at).total_seconds(), 3),
        "attempts": outcome.attempts,
        "power_state": outcome.power_state,
        "boot_seen": outcome.boot_seen,
        "error": outcome.error,
        "detail": {**row.detail, **outcome.detail},
    }
    finished = await repo.finish(session, action_id=row.id, holder=row.holder, values=values)
    if finished is None:
        # Failed meanwhile as abandoned (its deadline passed while it ran): keep that verdict.
        log.warning("power action %s of board %s ended after it was failed as abandoned", row.id, board.name)
        finished = await session.get(PowerAction, row.id, populate_existing=True)
        assert finished is not None
    await _consequences(session=session, actor=actor, board=board, outcome=outcome, now=now)
    await session.commit()
    return finished


async def _consequences(
    *, session: AsyncSession, actor: Actor, board: Board, outcome: Outcome, now: datetime
) -> None:
    error = outcome.controller_error
    if error is not None and not isinstance(error, Busy):
        answers = not isinstance(error, Unreachable | Timeout)
        said = f"board {board.name}: its power controller {'failed' if answers else 'does not answer'}"
        await board_records.raise_alert(
            session,
            board.id,
            POWER_CONTROLLER,
            f"{said}: {error.message}",
            severity="warning" if answers else "critical",
            now=now,
        )
    elif outcome.controller_answered:
        await board_records.resolve_alert(session=session, board_id=board.id, kind=POWER_CONTROLLER, now=now)
    if outcome.boot_failed:
        said = f"board {board.name} did not boot: {outcome.error}"
        await board_records.raise_alert(session, board.id, BOOT_FAILED, said, now=now)
        await _set_status(session, actor, board, BoardStatus.failed, _MAY_FAIL)
    elif outcome.booted:
        await board_records.resolve_alert(session=session, board_id=board.id, kind=BOOT_FAILED, now=now)
        await _set_status(session, actor, board, BoardStatus.online, {BoardStatus.failed})


async def _set_status(
    session: AsyncSession,
    actor: Actor,
    board: Board,
    status: BoardStatus,
    when_in: set[BoardStatus] | frozenset[BoardStatus],
) -> None:
    before = await repo.set_board_status(
        session, board_id=board.id, status=status.value, when_in={s.value for s in when_in}
    )
    if before is None:
        return
    await board_records.audit_status(session, actor, board.id, board.name, before, status)


async def record_interrupted(session: AsyncSession, row: PowerAction) -> None:
    now = utcnow()
    await repo.finish(
        session,
        action_id=row.id,
        holder=row.holder,
        values={
            "status": FAILED,
            "finished_at": now,
            "duration_s": round((now - row.started_at).total_seconds(), 3),
            "error": "interrupted: labfleet stopped during the action",
        },
    )
    await session.commit()
