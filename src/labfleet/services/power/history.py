"""A board's power actions as recorded (R18.4): its history, newest first, and one action."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import PowerAction
from labfleet.db.repositories import power as repo
from labfleet.errors import NotFound
from labfleet.services.inventory import boards
from labfleet.services.power.service import recover_stale


async def history(
    *,
    session: AsyncSession,
    board_id: int,
    actions: Sequence[str] = (),
    statuses: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[PowerAction]]:
    """A board's power actions, newest first (R18.4); abandoned ones are failed first. Flushes."""
    await boards.get(session=session, ident=board_id)
    await recover_stale(session=session)
    return await repo.history(
        session, board_id=board_id, actions=actions, statuses=statuses, limit=limit, offset=offset
    )


async def get_action(*, session: AsyncSession, board_id: int, action_id: int) -> PowerAction:
    """One power action of the board; ``NotFound`` if the board has none with that id."""
    action = await repo.get(session, action_id)
    if action is None or action.board_id != board_id:
        raise NotFound(f"board {board_id} has no power action {action_id}", field="action_id")
    return action
