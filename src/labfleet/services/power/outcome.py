"""What a power action's device work came to (``Outcome``), and how a controller's error or a
cycle's attempts become one; ``ending.py`` records it and what follows for the board.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from labfleet.db.models import PowerAction
from labfleet.errors import DeviceError
from labfleet.hw.power import PowerProtocol, PowerState
from labfleet.services.power.cycle import CyclePlan, CycleResult


@dataclass(slots=True)
class Outcome:
    """How an action ended, and what follows from it for the board and its alerts."""

    ok: bool
    power_state: str | None = None
    boot_seen: bool | None = None
    attempts: int = 0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    controller_error: DeviceError | None = None
    controller_answered: bool = False
    boot_failed: bool = False
    booted: bool = False


Work = Callable[[PowerProtocol, PowerAction], Awaitable[Outcome]]


def controller_failed(exc: DeviceError) -> Outcome:
    return Outcome(ok=False, error=f"power controller: {exc.message}", controller_error=exc)


def cycle_outcome(result: CycleResult, plan: CyclePlan, *, watched: bool) -> Outcome:
    detail = {"attempts": [a.as_dict() for a in result.attempts]}
    attempts = len(result.attempts)
    if result.console_error is not None:
        return Outcome(
            ok=False,
            error="the console could not be opened, so the power was not touched: "
            f"{result.console_error.message}",
            detail=detail,
        )
    if result.controller_error is not None:
        outcome = controller_failed(result.controller_error)
        outcome.attempts = attempts
        outcome.detail = detail
        return outcome
    if not watched:
        return Outcome(
            ok=True,
            power_state=PowerState.ON.value,
            attempts=attempts,
            detail={**detail, "note": "the board has no console: its boot was not watched"},
            controller_answered=True,
        )
    if result.booted:
        return Outcome(
            ok=True,
            power_state=PowerState.ON.value,
            boot_seen=True,
            attempts=attempts,
            detail=detail,
            controller_answered=True,
            booted=True,
        )
    last = result.attempts[-1].error if result.attempts else None
    return Outcome(
        ok=False,
        power_state=PowerState.ON.value,
        boot_seen=False,
        attempts=attempts,
        error=f"no boot seen ({plan.boot_pattern.pattern!r}) within {plan.boot_timeout_s:g} s "
        f"in {attempts} attempt(s); last: {last}",
        detail=detail,
        controller_answered=True,
        boot_failed=True,
    )
