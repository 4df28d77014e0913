"""What a check's reading means for a board (``record``): its status, failures and alerts.

Answering resolves ``unreachable`` and judges the temperature against the thresholds; not
answering counts a failure, and at the limit either asks for the one recovery attempt or
takes the board offline with an ``unreachable`` alert. Maintenance and failed boards keep
their status.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.repositories import board_checks as repo
from labfleet.schemas.enums import BoardStatus
from labfleet.services.core import alerts
from labfleet.services.health.boards.probing import Reading
from labfleet.services.health.boards.recovery import Recovery
from labfleet.services.health.boards.targets import BoardHealthPolicy, Target

RESOURCE_KIND = "board"
UNREACHABLE = "unreachable"
TEMPERATURE = "temperature"

_ONLINE = BoardStatus.online.value
_DEGRADED = BoardStatus.degraded.value
_OFFLINE = BoardStatus.offline.value
_MAINTENANCE = BoardStatus.maintenance.value
# The statuses a check may move a board between; maintenance and failed are someone else's.
_JUDGED = (_ONLINE, _DEGRADED, _OFFLINE)


@dataclass(frozen=True, slots=True)
class CheckResult:
    board_id: int
    name: str
    answered: bool
    status: str
    previous_status: str
    failures: int
    error: str | None = None
    temperature_c: float | None = None
    power_state: str | None = None
    raised: tuple[str, ...] = ()
    resolved: tuple[str, ...] = ()
    needs_recovery: bool = False
    """Unreachable ``failure_limit`` times, recovery not yet tried: the caller calls ``recover``."""
    recovery: int | None = None
    """The power cycle made to recover it, when this result follows one."""

    @property
    def changed_status(self) -> bool:
        return self.status != self.previous_status


async def record(
    *,
    session: AsyncSession,
    reading: Reading,
    policy: BoardHealthPolicy,
    now: datetime | None = None,
    recovery: Recovery | None = None,
) -> CheckResult | None:
    """Apply a check's outcome (see the module's docstring); None if the board is gone.
    ``recovery``: the power cycle made since the probe before this one. Flushes; the caller commits."""
    now = now or utcnow()
    if reading.answered:
        return await _answered(session, reading, now, recovery)
    return await _unanswered(session, reading, policy, now, recovery)


async def _answered(
    session: AsyncSession, reading: Reading, now: datetime, recovery: Recovery | None
) -> CheckResult | None:
    target = reading.target
    problems = "; ".join(reading.problems) or None
    found = await repo.record_answer(
        session,
        board_id=target.board_id,
        temperature_c=reading.temperature_c,
        power_state=reading.power_state,
        problems=problems,
        now=now,
    )
    before = await repo.status(session, target.board_id) if found else None
    if before is None:
        return None
    raised, resolved = [], []
    if await _resolve(session, target, UNREACHABLE, now):
        resolved.append(UNREACHABLE)
    temp = reading.temperature_c
    level = _temperature_level(target, temp)
    if level in ("warning", "critical"):
        await _temperature_alert(session, target, temp, level, before, now)
        raised.append(TEMPERATURE)
    elif level == "ok" and await _resolve(session, target, TEMPERATURE, now):
        resolved.append(TEMPERATURE)
    status = await _judged_status(session, target, level, before)
    return CheckResult(
        board_id=target.board_id,
        name=target.name,
        answered=True,
        status=status,
        previous_status=before,
        failures=0,
        error=problems,
        temperature_c=temp,
        power_state=reading.power_state,
        raised=tuple(raised),
        resolved=tuple(resolved),
        recovery=recovery.action_id if recovery else None,
    )


def _temperature_level(target: Target, temp: float | None) -> str | None:
    """``ok``, ``warning`` or ``critical`` against the board's thresholds; None when not known."""
    if temp is None:
        return None
    return "critical" if temp >= target.critical_c else "warning" if temp >= target.warning_c else "ok"


async def _temperature_alert(
    session: AsyncSession, target: Target, temp: float | None, level: str, before: str, now: datetime
) -> None:
    limit = target.critical_c if level == "critical" else target.warning_c
    consequence = ""
    if before in _JUDGED:
        consequence = "; it is offline" if level == "critical" else "; it is degraded"
    await alerts.raise_alert(
        session=session,
        resource_kind=RESOURCE_KIND,
        resource_id=target.board_id,
        kind=TEMPERATURE,
        severity=level,
        message=f"board {target.name}: {temp:g} °C, at or above its {level} threshold of "
        f"{limit:g} °C{consequence}",
        now=now,
    )


async def _judged_status(session: AsyncSession, target: Target, level: str | None, before: str) -> str:
    """The status the temperature asks for, where a check may move the board; else the one it has."""
    wanted = {"critical": _OFFLINE, "warning": _DEGRADED, "ok": _ONLINE}.get(level or "")
    if wanted is None:
        wanted = _ONLINE if before == _OFFLINE else before
    if (
        before in _JUDGED
        and wanted != before
        and await repo.set_status(session, board_id=target.board_id, status=wanted, when_in=_JUDGED)
    ):
        return wanted
    return before


async def _unanswered(
    session: AsyncSession,
    reading: Reading,
    policy: BoardHealthPolicy,
    now: datetime,
    recovery: Recovery | None,
) -> CheckResult | None:
    target = reading.target
    error = reading.error or "no answer"
    row = await repo.record_failure(
        session, board_id=target.board_id, error=error, power_state=reading.power_state, now=now
    )
    before = await repo.status(session, target.board_id) if row is not None else None
    if row is None or before is None:
        return None
    failures, recovery_at = row
    result = CheckResult(
        board_id=target.board_id,
        name=target.name,
        answered=False,
        status=before,
        previous_status=before,
        failures=failures,
        error=error,
        power_state=reading.power_state,
        recovery=recovery.action_id if recovery else None,
    )
    if failures < policy.failure_limit or before == _MAINTENANCE:
        return result
    if before in (_ONLINE, _DEGRADED) and policy.recover and target.powered and recovery_at is None:
        return replace(result, needs_recovery=True)

    moved = await repo.set_status(
        session, board_id=target.board_id, status=_OFFLINE, when_in=(_ONLINE, _DEGRADED)
    )
    if recovery is not None and recovery.action is None:
        how = f"and the power cycle to recover it could not be made ({recovery.error})"
    elif recovery is not None and recovery.action is not None:
        cycle = recovery.action
        how = f"nor after a power cycle (power action #{cycle.id}, {cycle.status}"
        how += f": {cycle.error})" if cycle.error else ")"
    elif recovery_at is not None:
        how = f"nor since the power cycle of {recovery_at:%Y-%m-%d %H:%M:%S} UTC"
    elif not target.powered:
        how = "and it has no power control to recover it"
    else:
        how = "and no power cycle was tried"
    await alerts.raise_alert(
        session=session,
        resource_kind=RESOURCE_KIND,
        resource_id=target.board_id,
        kind=UNREACHABLE,
        severity="critical",
        message=f"board {target.name} did not answer {failures} health checks in a row, {how}: {error}",
        now=now,
    )
    return replace(result, status=_OFFLINE if moved else before, raised=(UNREACHABLE,))


async def _resolve(session: AsyncSession, target: Target, kind: str, now: datetime) -> bool:
    done = await alerts.resolve_alert(
        session=session, resource_kind=RESOURCE_KIND, resource_id=target.board_id, kind=kind, now=now
    )
    return done is not None
