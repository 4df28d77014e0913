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

Each step has a file of its own: ``targets`` (1), ``probing`` (2), ``judging`` (3) and
``recovery`` (the one recovery attempt); the names below are the package's interface.
"""

from __future__ import annotations

from labfleet.services.health.boards.judging import (
    RESOURCE_KIND,
    TEMPERATURE,
    UNREACHABLE,
    CheckResult,
    record,
)
from labfleet.services.health.boards.probing import (
    MAX_CONCURRENT_CHECKS,
    BoardProbe,
    LiveBoardProbe,
    ProbeOnly,
    Reading,
    parse_temperature,
    power_state,
    probe,
)
from labfleet.services.health.boards.recovery import Recovery, recover
from labfleet.services.health.boards.targets import (
    TEMPERATURE_LABEL,
    TEMPERATURE_METRIC,
    BoardHealthPolicy,
    Target,
    due,
    target_of,
)

__all__ = [
    "MAX_CONCURRENT_CHECKS",
    "RESOURCE_KIND",
    "TEMPERATURE",
    "TEMPERATURE_LABEL",
    "TEMPERATURE_METRIC",
    "UNREACHABLE",
    "BoardHealthPolicy",
    "BoardProbe",
    "CheckResult",
    "LiveBoardProbe",
    "ProbeOnly",
    "Reading",
    "Recovery",
    "Target",
    "due",
    "parse_temperature",
    "power_state",
    "probe",
    "record",
    "recover",
    "target_of",
]
