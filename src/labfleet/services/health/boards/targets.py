"""Which boards a health round checks, and what judging each takes (``due``, ``target_of``).

A board is due when it is neither ``flashing`` nor ``decommissioned`` and its last check
is older than the gap asked for; each comes with its access, whether it has power
control, its temperature command and the lab-wide temperature thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.repositories import board_checks as repo
from labfleet.errors import LabfleetError
from labfleet.hw.commands import quote
from labfleet.secretbox import SecretBox
from labfleet.services.health.probes import BoardAccess, board_access

TEMPERATURE_LABEL = "temperature-command"
TEMPERATURE_METRIC = "temperature_c"


@dataclass(frozen=True, slots=True)
class BoardHealthPolicy:
    """How boards are judged; from ``Settings`` (``LABFLEET_HEALTH_*``)."""

    failure_limit: int = 3
    """Failed checks in a row before the recovery attempt (and offline after it)."""
    timeout_seconds: float = 30.0
    """For one probe (console or SSH), and for one temperature read."""
    temperature_warning_c: float = 80.0
    """Used when no lab-wide ``health_thresholds`` row says otherwise."""
    temperature_critical_c: float = 95.0
    recover: bool = True
    """Power-cycle an unreachable board once before it goes offline (R10.3)."""
    read_power_state: bool = True


@dataclass(frozen=True, slots=True)
class Target:
    """A board claimed for a check, with what reaching and judging it takes."""

    board_id: int
    name: str
    status: str
    access: BoardAccess | None
    powered: bool
    """Whether it has power control (a driver configured)."""
    temperature_command: str | None
    warning_c: float
    critical_c: float
    problem: str | None = None


async def due(
    *,
    session: AsyncSession,
    secrets: SecretBox,
    policy: BoardHealthPolicy,
    min_gap: float = 0.0,
    now: datetime | None = None,
) -> list[Target]:
    """Claim every board due (see the module's docstring); the caller commits."""
    ids = await repo.claim_due(session, now=now or utcnow(), min_gap=min_gap)
    if not ids:
        return []
    limits = await repo.threshold(session, metric=TEMPERATURE_METRIC)
    warning, critical = limits or (policy.temperature_warning_c, policy.temperature_critical_c)
    return [_target(board, secrets, warning, critical) for board in await repo.boards(session, ids)]


async def target_of(
    *, session: AsyncSession, secrets: SecretBox, policy: BoardHealthPolicy, board_id: int
) -> Target | None:
    """One board as a check sees it, outside the periodic rounds (a deployment that failed on it)."""
    found = await repo.boards(session, [board_id])
    if not found:
        return None
    limits = await repo.threshold(session, metric=TEMPERATURE_METRIC)
    warning, critical = limits or (policy.temperature_warning_c, policy.temperature_critical_c)
    return _target(found[0], secrets, warning, critical)


def _target(board: Any, secrets: SecretBox, warning: float, critical: float) -> Target:
    labels = {label.key: label.value for label in board.labels}
    access: BoardAccess | None
    try:
        access, problem = board_access(board, secrets), None
    except LabfleetError as exc:
        # Its console still tells whether it answers; without one there is nothing to ask.
        problem = f"its stored SSH access cannot be used: {exc.message}"
        access = BoardAccess(name=board.name, console_url=board.console_url, ssh=None)
        if board.console_url is None:
            access = None
    return Target(
        board_id=board.id,
        name=board.name,
        status=board.status,
        access=access,
        powered=board.power_driver is not None,
        temperature_command=_temperature_command(labels.get(TEMPERATURE_LABEL)),
        warning_c=warning,
        critical_c=critical,
        problem=problem,
    )


def _temperature_command(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    value = value.strip()
    return f"cat {quote(value)}" if value.startswith("/") else value
