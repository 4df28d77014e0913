"""The one automatic recovery of an unreachable board: a power cycle through
``services.power`` as the system actor, claimed in the database first so that one process
makes it (R10.3, property 13).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import PowerAction
from labfleet.db.repositories import board_checks as repo
from labfleet.errors import Conflict, LabfleetError
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.power import PowerCycleIn
from labfleet.services.core.events import EventBus
from labfleet.services.health.boards.targets import Target
from labfleet.services.power import service as power
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import PowerPolicy


@dataclass(frozen=True, slots=True)
class Recovery:
    """The one recovery attempt: the power cycle's row (its status, attempts, error), or why
    no cycle could be made (the board's power wiring cannot be used, say)."""

    action: PowerAction | None
    error: str | None = None

    @property
    def action_id(self) -> int | None:
        return None if self.action is None else self.action.id


async def recover(
    *,
    session: AsyncSession,
    hardware: Hardware,
    target: Target,
    policy: PowerPolicy,
    bus: EventBus | None = None,
    now: datetime | None = None,
) -> Recovery | None:
    """Power-cycle an unreachable board once, as the system actor (R10.3). Give it a session
    with no transaction open: the claim is committed first, and the power service commits.

    None when no attempt was made: another process claimed it, or the board is busy with
    another power action (the claim is given back, so the next round tries again).
    """
    claimed_at = now or utcnow()
    if not await repo.claim_recovery(session, board_id=target.board_id, now=claimed_at):
        await session.commit()
        return None
    await session.commit()
    try:
        action = await power.cycle(
            session=session,
            actor=SYSTEM,
            hardware=hardware,
            board_id=target.board_id,
            policy=policy,
            options=PowerCycleIn(retries=1),
            bus=bus,
        )
    except Conflict as exc:
        await session.rollback()
        if exc.field is not None:
            # Its wiring cannot be used, or it refuses power actions: that was the attempt.
            return Recovery(action=None, error=exc.message)
        # Busy with another power action: no attempt; the next round tries again.
        await repo.release_recovery(session, board_id=target.board_id, claimed_at=claimed_at)
        await session.commit()
        return None
    except LabfleetError as exc:
        await session.rollback()
        return Recovery(action=None, error=exc.message)
    except BaseException:
        with contextlib.suppress(Exception):
            await session.rollback()
        raise
    return Recovery(action=action)
