"""The test stage's runner: each command typed at the target's console (R17.3).

A command runs with exit-status markers (``hw/console.py``); one that times out is
interrupted (Ctrl-C) so the next finds a prompt. Every case's result is recorded with its
output, whatever it was, and the stage fails if any case failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from labfleet.db.base import utcnow
from labfleet.db.models.pipelines import FAILED, PASSED
from labfleet.errors import DeviceError
from labfleet.schemas.pipelines import TestCase
from labfleet.services.environments.targets.base import Console, Say


@dataclass(frozen=True, slots=True)
class Outcome:
    position: int
    case: TestCase
    status: str
    exit_status: int | None
    output: str
    started: datetime


async def run_case(console: Console, case: TestCase) -> tuple[int | None, str]:
    """Its exit status (``None`` when it did not finish) and its output."""
    try:
        result = await console.run(case.command, timeout=case.timeout_s)
    except DeviceError as exc:
        with contextlib.suppress(DeviceError):
            await console.write(b"\x03\n", timeout=5)  # interrupt it, get a prompt back
        return None, exc.message
    return result.exit_status, result.output


async def run_tests(
    console: Console,
    cases: Sequence[TestCase],
    *,
    say: Say,
    write: Say,
    record: Callable[[Outcome], Awaitable[None]],
) -> list[str]:
    """Run ``cases`` in order on the open ``console``, each recorded; the names of those that failed."""
    failed: list[str] = []
    for position, case in enumerate(cases):
        say(f"test {case.name}: $ {case.command}")
        started = utcnow()
        exit_status, output = await run_case(console, case)
        if output:
            write(output if output.endswith("\n") else output + "\n")
        status = PASSED if exit_status == 0 else FAILED
        say(f"test {case.name}: {'PASS' if status == PASSED else 'FAIL'} (exit status {exit_status})")
        if status != PASSED:
            failed.append(case.name)
        await record(Outcome(position, case, status, exit_status, output, started))
    return failed
