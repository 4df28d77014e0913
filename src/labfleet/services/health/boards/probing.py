"""Asking a board in a health check: whether it answers, its temperature where it says how,
and its power state through ``services.power``. Never raises for the board: a ``Reading``
says what was learned.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models.power import SUCCEEDED
from labfleet.errors import DeviceError, LabfleetError
from labfleet.hw.ssh import SshPool, SshRunner
from labfleet.schemas.auth import SYSTEM
from labfleet.services.core.events import EventBus
from labfleet.services.health.boards.targets import Target
from labfleet.services.health.probes import BoardAccess, ResourceProbe
from labfleet.services.power import service as power
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import PowerPolicy

MAX_CONCURRENT_CHECKS = 16
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class BoardProbe(Protocol):
    async def board(self, access: BoardAccess) -> None:
        """Raises ``DeviceError`` when the board does not answer."""
        ...

    async def board_read(self, access: BoardAccess, command: str, *, timeout: float) -> str | None:
        """What ``command`` prints on the board; None when it cannot be run there (no SSH)."""
        ...


class LiveBoardProbe:
    """The console or SSH through a ``ResourceProbe`` (``live_probe``); reads over SSH."""

    def __init__(self, probe: ResourceProbe, *, pool: SshPool) -> None:
        self._probe = probe
        self._pool = pool

    async def board(self, access: BoardAccess) -> None:
        await self._probe.board(access)

    async def board_read(self, access: BoardAccess, command: str, *, timeout: float) -> str | None:
        if access.ssh is None:
            return None
        result = await SshRunner(pool=self._pool, target=access.ssh).run(command, timeout=timeout)
        return result.stdout


class ProbeOnly:
    """Connectivity through a ``ResourceProbe`` and nothing read: what ``NoProbe`` gives when
    device checks are off."""

    def __init__(self, probe: ResourceProbe) -> None:
        self._probe = probe

    async def board(self, access: BoardAccess) -> None:
        await self._probe.board(access)

    async def board_read(self, access: BoardAccess, command: str, *, timeout: float) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class Reading:
    """What a check learned."""

    target: Target
    answered: bool
    error: str | None = None
    temperature_c: float | None = None
    problems: tuple[str, ...] = ()
    power_state: str | None = None


def parse_temperature(text: str) -> float | None:
    """Degrees Celsius from what a sensor printed: the first number, millidegrees above 1000."""
    found = _NUMBER.search(text)
    if found is None:
        return None
    value = float(found.group())
    return round(value / 1000.0 if abs(value) > 1000 else value, 1)


async def probe(*, probe: BoardProbe, target: Target, timeout: float) -> Reading:
    """Whether the board answers, and its temperature where it tells it; never raises for the board."""
    if target.access is None:
        return Reading(target=target, answered=False, error=target.problem or "no way to reach it is stored")
    try:
        async with asyncio.timeout(timeout):
            await probe.board(target.access)
    except TimeoutError:
        return Reading(
            target=target, answered=False, error=f"board {target.name}: no answer within {timeout:g} s"
        )
    except DeviceError as exc:
        return Reading(target=target, answered=False, error=exc.message)
    known = (target.problem,) if target.problem else ()
    if target.temperature_command is None:
        return Reading(target=target, answered=True, problems=known)
    problem = None
    temperature = None
    try:
        async with asyncio.timeout(timeout):
            out = await probe.board_read(target.access, target.temperature_command, timeout=timeout)
    except TimeoutError:
        problem = f"no temperature within {timeout:g} s"
    except DeviceError as exc:
        problem = exc.message
    else:
        if out is None:
            problem = "the board has no SSH to read it through"
        else:
            temperature = parse_temperature(out)
            if temperature is None:
                problem = f"`{target.temperature_command}` printed no number: {out.strip()[:80]!r}"
    problems = (*known, f"temperature: {problem}") if problem else known
    return Reading(target=target, answered=True, temperature_c=temperature, problems=problems)


async def power_state(
    *,
    session: AsyncSession,
    hardware: Hardware,
    target: Target,
    policy: PowerPolicy,
    bus: EventBus | None = None,
) -> str | None:
    """The board's power state as its controller says it (a ``state`` power action by the
    system actor, so recorded); None when it has no power control, is busy with another
    power action, or the controller failed (which raises its own alert). Commits."""
    if not target.powered:
        return None
    try:
        action = await power.read_state(
            session=session, actor=SYSTEM, hardware=hardware, board_id=target.board_id, policy=policy, bus=bus
        )
    except LabfleetError:
        await session.rollback()
        return None
    return action.power_state if action.status == SUCCEEDED else None
