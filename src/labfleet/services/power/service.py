"""Board power as a service (R18): on, off, state and cycle through the board's driver, every one recorded.

**A power action is its own unit of work.** Unlike other services, these functions
commit: the action's row is committed ``running`` before the device is touched (others
see what runs; a process that dies leaves a trace), the device works with no transaction
open (on SQLite an open transaction holds the database's write lock, and a cycle lasts
minutes), and the result, the board's status and the alerts are committed together when
it ends. Pass a session with no changes pending: they would be committed with the row.

**One operation per board at a time** (``services/core/device_locks.py``): the board's device
lock is taken first, without waiting, so a second action on a busy board is a
``Conflict`` naming what runs; on PostgreSQL the lock holds across processes. The
database guards power actions itself too: a unique index allows one ``running`` action
per board, which is what keeps two processes apart on SQLite. A board being flashed
refuses power actions; so does a decommissioned one.

**Durability: no lease, a deadline.** A power action is short and bounded: every row
has a ``deadline_at`` (its start plus the longest its steps may take, plus a margin). A
row still ``running`` past its deadline belongs to a process that died; it is failed
with the reason by ``recover_stale`` (called before every action, when a board's
history is read, and meant for the engine's periodic jobs). When the board's lock is
ours, a running row of the board is also failed at once: on PostgreSQL any such row
(its process no longer holds the lock), on SQLite one of this very process. Nothing is
retried on another process's behalf: a cycle half-done by a dead process is for a
person (or the next health check) to repeat, not for labfleet to redo unasked.

**A cycle** (``services/power/cycle.py``) is off, wait, on, then the board's console is
watched for its boot pattern within a timeout, up to N attempts. The pattern is, first
found: the request's, the board's ``boot-pattern`` label, the server's default (a login
or shell prompt). After N attempts without a boot the board's status becomes ``failed``
and a ``boot-failed`` alert is raised (R18.2); a later cycle that boots it brings it back
``online`` and resolves the alert. A power controller that does not answer raises a
``power-controller`` alert (R18.5), resolved the next time it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Board, PowerAction
from labfleet.db.models.power import CYCLE, OFF, ON, RUNNING, STATE
from labfleet.db.repositories import locks as locks_repo
from labfleet.db.repositories import power as repo
from labfleet.errors import DeviceError, Invalid
from labfleet.hw.power import PowerProtocol, PowerState
from labfleet.schemas.auth import Actor
from labfleet.schemas.power import PowerCycleIn
from labfleet.services.core.device_locks import device_lock
from labfleet.services.core.events import EventBus
from labfleet.services.inventory import boards
from labfleet.services.power import records as board_records
from labfleet.services.power.access import BoardWiring, Hardware
from labfleet.services.power.announce import announce, topic
from labfleet.services.power.cycle import CyclePlan, Sleep, Step, run_cycle
from labfleet.services.power.ending import record_end, record_interrupted
from labfleet.services.power.outcome import Outcome, Work, controller_failed, cycle_outcome
from labfleet.services.power.starting import add_running, audit_asked, refuse_if_barred, with_last_switch

log = logging.getLogger(__name__)

RESOURCE_KIND = board_records.RESOURCE_KIND
BOOT_PATTERN_LABEL = "boot-pattern"
# A login prompt, or a shell prompt at the end of what the console printed.
DEFAULT_BOOT_PATTERN = r"(?m)(login: *$|[#$] $)"
_ABANDONED = "no result: the labfleet process running it stopped before it finished"


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerPolicy:
    """The defaults of power actions; a cycle request may override the cycle's."""

    off_s: float = 5.0
    boot_timeout_s: float = 180.0
    attempts: int = 3
    command_timeout_s: float = 30.0
    console_open_timeout_s: float = 10.0
    boot_pattern: str = DEFAULT_BOOT_PATTERN
    deadline_margin_s: float = 60.0
    """Added to an action's longest duration to make its deadline."""


def process_name() -> str:
    """This process, as a running action names it: ``hostname:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


# -- the actions


async def switch(
    *,
    session: AsyncSession,
    actor: Actor,
    hardware: Hardware,
    board_id: int,
    state: str,
    policy: PowerPolicy = PowerPolicy(),
    bus: EventBus | None = None,
) -> PowerAction:
    """Switch the board on or off (R18.1), recorded (R18.4)."""
    if state not in (ON, OFF):
        raise Invalid(f"a board is switched on or off, not {state!r}", field="state")

    async def work(power: PowerProtocol, _: PowerAction) -> Outcome:
        try:
            await (power.on if state == ON else power.off)(timeout=policy.command_timeout_s)
        except DeviceError as exc:
            return controller_failed(exc)
        return Outcome(ok=True, power_state=state, controller_answered=True)

    return await _perform(
        session=session,
        actor=actor,
        hardware=hardware,
        board=await boards.get(session=session, ident=board_id),
        action=state,
        budget_s=policy.command_timeout_s,
        policy=policy,
        work=work,
        bus=bus,
    )


async def read_state(
    *,
    session: AsyncSession,
    actor: Actor,
    hardware: Hardware,
    board_id: int,
    policy: PowerPolicy = PowerPolicy(),
    bus: EventBus | None = None,
) -> PowerAction:
    """Ask the board's power controller for its state (R18.3), recorded. A controller that
    cannot tell (pdudaemon) says unknown; the detail names the last switch made, if any."""

    async def work(power: PowerProtocol, _: PowerAction) -> Outcome:
        try:
            state = await power.state(timeout=policy.command_timeout_s)
        except DeviceError as exc:
            return controller_failed(exc)
        # "unknown" may come without asking the controller at all (pdudaemon): it proves nothing.
        return Outcome(ok=True, power_state=state.value, controller_answered=state is not PowerState.UNKNOWN)

    return await _perform(
        session=session,
        actor=actor,
        hardware=hardware,
        board=await boards.get(session=session, ident=board_id),
        action=STATE,
        budget_s=policy.command_timeout_s,
        policy=policy,
        work=work,
        bus=bus,
    )


async def cycle(
    *,
    session: AsyncSession,
    actor: Actor,
    hardware: Hardware,
    board_id: int,
    policy: PowerPolicy = PowerPolicy(),
    options: PowerCycleIn | None = None,
    bus: EventBus | None = None,
    sleep: Sleep = asyncio.sleep,
) -> PowerAction:
    """Off, wait, on, watch the console for the boot; retry; mark the board failed after the last (R18.2)."""
    options = options or PowerCycleIn()
    board = await boards.get(session=session, ident=board_id)
    plan = _plan(board, policy, options)
    wiring = BoardWiring.of(board)

    async def work(power: PowerProtocol, row: PowerAction) -> Outcome:
        def progress(attempt: int, step: Step) -> None:
            if bus is not None:
                bus.publish(
                    topic(board_id),
                    {"type": "power-progress", "action": row.id, "attempt": attempt, "step": step.value},
                )

        console = hardware.console(wiring)
        result = await run_cycle(power=power, console=console, plan=plan, progress=progress, sleep=sleep)
        return cycle_outcome(result, plan, watched=console is not None)

    return await _perform(
        session=session,
        actor=actor,
        hardware=hardware,
        board=board,
        action=CYCLE,
        budget_s=plan.budget_s(),
        policy=policy,
        work=work,
        bus=bus,
        max_attempts=plan.attempts if wiring.console_url else 1,
        detail={
            "boot_pattern": plan.boot_pattern.pattern,
            "off_s": plan.off_s,
            "boot_timeout_s": plan.boot_timeout_s,
        },
    )


async def recover_stale(*, session: AsyncSession, now: datetime | None = None) -> list[int]:
    """Fail every running action past its deadline, with the reason; their ids. Flushes, never commits."""
    failed = await repo.fail_running(session, reason=_ABANDONED, now=now or utcnow())
    if failed:
        log.warning("power actions abandoned by a stopped process, now failed: %s", failed)
    return failed


# -- how every action runs


async def _perform(
    *,
    session: AsyncSession,
    actor: Actor,
    hardware: Hardware,
    board: Board,
    action: str,
    budget_s: float,
    policy: PowerPolicy,
    work: Work,
    bus: EventBus | None,
    max_attempts: int = 1,
    detail: dict[str, Any] | None = None,
) -> PowerAction:
    power = hardware.power(BoardWiring.of(board))
    what = f"power {action} of board {board.name} by {actor.name}"
    async with device_lock(session=session, kind=RESOURCE_KIND, ident=board.id, what=what):
        row = await _begin(
            session=session,
            actor=actor,
            board=board,
            action=action,
            deadline=utcnow() + timedelta(seconds=budget_s + policy.deadline_margin_s),
            max_attempts=max_attempts,
            detail=detail or {},
        )
        announce(bus, row)
        try:
            outcome = await work(power, row)
        except asyncio.CancelledError:
            # Stopped from outside (the server shutting down): say so if we still can.
            with contextlib.suppress(Exception):
                await asyncio.shield(record_interrupted(session, row))
            raise
        except Exception as exc:
            log.exception("power %s of board %s failed unexpectedly", action, board.name)
            outcome = Outcome(ok=False, error=f"labfleet failed during the action: {exc}")
        row = await record_end(session=session, actor=actor, board=board, row=row, outcome=outcome)
    announce(bus, row)
    return row


async def _begin(
    *,
    session: AsyncSession,
    actor: Actor,
    board: Board,
    action: str,
    deadline: datetime,
    max_attempts: int,
    detail: dict[str, Any],
) -> PowerAction:
    """Check the board may be acted on, then commit its action as running."""
    await refuse_if_barred(session, board)
    now = utcnow()
    await _fail_left_behind(session, board, now)
    if action == STATE:
        detail = await with_last_switch(session, board, detail)
    row = PowerAction(
        board_id=board.id,
        action=action,
        status=RUNNING,
        requested_by=actor.name,
        team=actor.team,
        holder=process_name(),
        started_at=now,
        deadline_at=deadline,
        attempts=0,
        max_attempts=max_attempts,
        detail=detail,
    )
    await add_running(session, board, row)
    if action != STATE:
        # A read changes nothing. A switch or a cycle is audited as it is asked, committed with
        # its running row before the device is touched, so it is on record however it ends.
        await audit_asked(session, actor, board, row)
    await session.commit()
    return row


async def _fail_left_behind(session: AsyncSession, board: Board, now: datetime) -> None:
    """Fail the actions stopped processes left running: any past its deadline, and the board's own."""
    await recover_stale(session=session, now=now)
    # The board's lock is ours: a running action of it left behind is nobody's any more.
    holders = None if locks_repo.uses_advisory_locks(session) else [process_name()]
    await repo.fail_running(
        session, reason=_ABANDONED, now=now, board_id=board.id, past_deadline=False, holders=holders
    )


# -- the cycle asked for


def _plan(board: Board, policy: PowerPolicy, options: PowerCycleIn) -> CyclePlan:
    labels = {label.key: label.value for label in board.labels}
    pattern = options.boot_pattern or labels.get(BOOT_PATTERN_LABEL) or policy.boot_pattern
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        field_ = "boot_pattern" if options.boot_pattern else f"labels.{BOOT_PATTERN_LABEL}"
        raise Invalid(
            f"the boot pattern {pattern!r} is not a regular expression: {exc}", field=field_
        ) from None
    return CyclePlan(
        attempts=options.retries or policy.attempts,
        off_s=policy.off_s if options.off_s is None else options.off_s,
        boot_timeout_s=options.boot_timeout_s or policy.boot_timeout_s,
        command_timeout_s=policy.command_timeout_s,
        console_open_timeout_s=policy.console_open_timeout_s,
        boot_pattern=regex,
    )


__all__ = [
    "BOOT_PATTERN_LABEL",
    "DEFAULT_BOOT_PATTERN",
    "PowerPolicy",
    "cycle",
    "read_state",
    "recover_stale",
    "switch",
]
