"""Whether a board may be flashed with an artifact: the checks a flash request passes, under
the board's row lock, before its job is queued (``service.request_flash``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, Board
from labfleet.db.repositories import flashing as repo
from labfleet.db.repositories import reservations as reservations_repo
from labfleet.errors import Conflict, Invalid
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import BoardStatus
from labfleet.services.reservations import service as reservations

_REFUSING = {
    BoardStatus.decommissioned: "it is decommissioned",
    BoardStatus.maintenance: "it is in maintenance",
    BoardStatus.flashing: "it is being flashed",
}


async def refuse_if_busy(session: AsyncSession, board: Board, *, force: bool) -> None:
    """``Conflict`` when the board is flashing, decommissioned, in maintenance, or failed (unless forced)."""
    status = BoardStatus(board.status)
    if status is BoardStatus.flashing:
        other = await repo.active_for(session, board.id)
        doing = f": flash job #{other.id} by {other.requested_by} is {other.status}" if other else ""
        raise Conflict(f"board {board.name} refuses a flash: it is being flashed{doing}", field="status")
    refusal = _REFUSING.get(status)
    if refusal is None and status is BoardStatus.failed and not force:
        refusal = "it is failed (force to flash it anyway)"
    if refusal is not None:
        raise Conflict(f"board {board.name} refuses a flash: {refusal}", field="status")


async def refuse_if_held(session: AsyncSession, board: Board, actor: Actor, now: datetime) -> None:
    """``Conflict`` when a reservation of someone else holds the board; the requester's own is fine."""
    await reservations.expire_due(session=session, now=now, board_id=board.id)
    holder = await reservations_repo.holder_of_board(session, board.id)
    if holder is not None and holder.expires_at > now and holder.owner != actor.name:
        raise Conflict(
            f"board {board.name} is held by reservation #{holder.id} ({holder.owner}, {holder.purpose!r}); "
            "only its holder may flash it",
            field="board_id",
        )


async def artifact_for(session: AsyncSession, board: Board, artifact_id: int) -> Artifact:
    """The artifact asked for, which must be built for the board's architecture."""
    artifact = await repo.artifact(session, artifact_id)
    if artifact is None:
        raise Invalid(f"no artifact with id {artifact_id}", field="artifact_id")
    if artifact.architecture != board.architecture:
        raise Invalid(
            f"artifact {artifact.id} ({artifact.name}) is built for {artifact.architecture}; "
            f"board {board.name} is {board.architecture}",
            field="artifact_id",
        )
    return artifact


def decide_boot_check(board: Board, asked: bool | None) -> bool:
    """Whether the flash is boot-checked: as asked, else whenever the board can be (a console and power)."""
    can_boot = board.console_url is not None and board.power_driver is not None
    if asked and not can_boot:
        raise Invalid(
            f"board {board.name} cannot be boot-checked: it needs a console and power control",
            field="boot_check",
        )
    return can_boot if asked is None else asked
