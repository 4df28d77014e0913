"""Periodic health checks of boards: connectivity, temperature and power state (R10).

A round (``labfleet.engine.resource_health``) has the steps of the other health checks,
and no transaction stays open while a board is waited for:

1. ``due`` claims the boards to check in one writing statement the caller commits: every
   board neither ``flashing`` nor ``decommissioned`` (a board being flashed is busy and
   its console belongs to the flash) whose last check is older than ``min_gap``.
2. ``probe`` asks the board through a ``BoardProbe``: its console must answer a carriage
   return (else SSH must run ``true``), as before it leaves maintenance
   (``services.health.probes``). Its temperature is read where the board says how: the
   label ``temperature-command`` holds a shell command, or a file such as
   ``/sys/class/thermal/thermal_zone0/temp``, run or read over the board's SSH (a value
   above 1000 is taken as millidegrees); boards without the label are not asked.
   ``power_state`` reads the state of a board that has power control through
   ``services.power`` (as the system actor; recorded like every power action; a busy
   board or a controller that cannot tell, as pdudaemon, is no failure of the check).
3. ``record`` applies the outcome, its first statement a write; the caller commits:

   - Answered: ``reachable``, failures reset, the recovery attempt forgotten, the
     ``unreachable`` alert resolved. The temperature against the lab-wide thresholds
     (``health_thresholds`` rows of ``board`` / ``temperature_c``, else the policy's
     defaults) decides the status (R10.4): below the warning ``online``, from the warning
     ``degraded``, from the critical ``offline``, with a ``temperature`` alert of that
     severity (resolved once below the warning). An ``offline`` board whose temperature
     is not known this time comes back ``online``; a ``degraded`` one stays so.
   - No answer: failures + 1 and the reason. At ``failure_limit`` failures in a row an
     ``online`` or ``degraded`` board with power control gets **one** automatic recovery
     (R10.3, property 13): ``CheckResult.needs_recovery`` asks the caller for ``recover``
     (a power cycle through ``services.power`` as the system actor, one attempt, watched
     on the console), then for a new probe and ``record``. The attempt is claimed in the
     database first (``recovery_attempted_at``), so that one process makes it; a board
     busy with another power action gives the claim back and is tried at the next round.
     A board that still does not answer, or that has no power control, goes ``offline``
     with an ``unreachable`` alert (critical); one the cycle could not boot is already
     ``failed`` (``services.power``) and stays so. Answering again brings it back
     ``online`` and makes the next outage eligible for a recovery again.

Maintenance: checked, but a check never changes its status; not answering raises no
alert and never power-cycles it (an operator is on it). A ``failed`` board is checked too;
only a power cycle that boots it brings it back (``services.power``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import PowerAction
from labfleet.db.models.power import SUCCEEDED
from labfleet.db.repositories import board_checks as repo
from labfleet.errors import Conflict, DeviceError, LabfleetError
from labfleet.hw.commands import quote
from labfleet.hw.ssh import SshPool, SshRunner
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import BoardStatus
from labfleet.schemas.power import PowerCycleIn
from labfleet.secretbox import SecretBox
from labfleet.services.core import alerts
from labfleet.services.core.events import EventBus
from labfleet.services.health.probes import BoardAccess, ResourceProbe, board_access
from labfleet.services.power import service as power
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import PowerPolicy

RESOURCE_KIND = "board"
UNREACHABLE = "unreachable"
TEMPERATURE = "temperature"
TEMPERATURE_LABEL = "temperature-command"
TEMPERATURE_METRIC = "temperature_c"
MAX_CONCURRENT_CHECKS = 16

_ONLINE = BoardStatus.online.value
_DEGRADED = BoardStatus.degraded.value
_OFFLINE = BoardStatus.offline.value
_MAINTENANCE = BoardStatus.maintenance.value
# The statuses a check may move a board between; maintenance and failed are someone else's.
_JUDGED = (_ONLINE, _DEGRADED, _OFFLINE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


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


@dataclass(frozen=True, slots=True)
class Reading:
    """What a check learned."""

    target: Target
    answered: bool
    error: str | None = None
    temperature_c: float | None = None
    problems: tuple[str, ...] = ()
    power_state: str | None = None


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


@dataclass(frozen=True, slots=True)
class Recovery:
    """The one recovery attempt: the power cycle's row (its status, attempts, error), or why
    no cycle could be made (the board's power wiring cannot be used, say)."""

    action: PowerAction | None
    error: str | None = None

    @property
    def action_id(self) -> int | None:
        return None if self.action is None else self.action.id


# -- 1. which boards


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


def parse_temperature(text: str) -> float | None:
    """Degrees Celsius from what a sensor printed: the first number, millidegrees above 1000."""
    found = _NUMBER.search(text)
    if found is None:
        return None
    value = float(found.group())
    return round(value / 1000.0 if abs(value) > 1000 else value, 1)


# -- 2. asking the board


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


# -- 3. what it means


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
    level = None
    if temp is not None:
        level = "critical" if temp >= target.critical_c else "warning" if temp >= target.warning_c else "ok"
    if level in ("warning", "critical"):
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
        raised.append(TEMPERATURE)
    elif level == "ok" and await _resolve(session, target, TEMPERATURE, now):
        resolved.append(TEMPERATURE)

    wanted = {"critical": _OFFLINE, "warning": _DEGRADED, "ok": _ONLINE}.get(level or "")
    if wanted is None:
        wanted = _ONLINE if before == _OFFLINE else before
    status = before
    if (
        before in _JUDGED
        and wanted != before
        and await repo.set_status(session, board_id=target.board_id, status=wanted, when_in=_JUDGED)
    ):
        status = wanted
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


# -- 4. the one recovery attempt


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
