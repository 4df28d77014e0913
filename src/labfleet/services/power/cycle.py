"""The power cycle itself, over the power and console protocols only: off, wait, on, watch for boot, retry.

No database here: ``services/power/service.py`` records what this returns. Each attempt is::

    off -> wait off_s -> (console drained, reopened if it broke) -> on -> watch for the boot pattern

The console is opened before the first ``off`` and stays open across the attempts, as
with a console server (ser2net): whatever the board prints from the moment it gets power
is seen, so a banner printed at once is never missed. Output from before the ``on``
(shutdown messages, an earlier banner) is drained away first, so only a new boot counts.

A power controller that fails (``off`` or ``on`` raises) ends the cycle at once: trying
again would only repeat the failure, and the controller, not the board, is at fault. A
console that cannot be opened at the start ends it before the power is touched: a cycle
that cannot be watched proves nothing and a board that was working would be rebooted for
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from labfleet.errors import DeviceError, Timeout
from labfleet.hw.console import ConsoleProtocol
from labfleet.hw.power import PowerProtocol


class Step(StrEnum):
    OPEN_CONSOLE = "open-console"
    OFF = "off"
    WAIT = "wait"
    ON = "on"
    WATCH = "watch"
    BOOTED = "booted"
    NOT_BOOTED = "not-booted"


Progress = Callable[[int, Step], None]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class CyclePlan:
    attempts: int
    off_s: float
    boot_timeout_s: float
    command_timeout_s: float
    console_open_timeout_s: float
    boot_pattern: re.Pattern[str]

    def budget_s(self) -> float:
        """The longest a cycle of this plan may take: its deadline, once started."""
        one = self.off_s + self.boot_timeout_s + 2 * self.command_timeout_s + self.console_open_timeout_s
        return self.console_open_timeout_s + self.attempts * one


@dataclass(slots=True)
class Attempt:
    number: int
    boot_seen: bool | None = None
    seconds: float = 0.0
    seen: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "boot_seen": self.boot_seen,
            "seconds": round(self.seconds, 3),
            "seen": self.seen,
            "error": self.error,
        }


@dataclass(slots=True)
class CycleResult:
    attempts: list[Attempt] = field(default_factory=list)
    controller_error: DeviceError | None = None
    """The power controller failed: the cycle stopped there."""
    console_error: DeviceError | None = None
    """The console could not be opened before the cycle: the power was not touched."""

    @property
    def booted(self) -> bool | None:
        """The last attempt's boot was seen; None if no console was watched."""
        if not self.attempts:
            return False
        return self.attempts[-1].boot_seen


def _nothing(attempt: int, step: Step) -> None:
    return None


async def run_cycle(
    *,
    power: PowerProtocol,
    console: ConsoleProtocol | None,
    plan: CyclePlan,
    progress: Progress = _nothing,
    sleep: Sleep = asyncio.sleep,
) -> CycleResult:
    """Cycle until the boot pattern is seen or ``plan.attempts`` are used; without a console, once,
    unwatched."""
    result = CycleResult()
    if console is not None:
        progress(0, Step.OPEN_CONSOLE)
        try:
            await console.open(timeout=plan.console_open_timeout_s)
        except DeviceError as exc:
            result.console_error = exc
            return result
    watch = _Watch(console, plan)
    try:
        loop = asyncio.get_running_loop()
        for number in range(1, (plan.attempts if console is not None else 1) + 1):
            attempt = Attempt(number)
            result.attempts.append(attempt)
            started = loop.time()
            try:
                progress(number, Step.OFF)
                await power.off(timeout=plan.command_timeout_s)
                progress(number, Step.WAIT)
                await sleep(plan.off_s)
                ready = await watch.ready()
                progress(number, Step.ON)
                await power.on(timeout=plan.command_timeout_s)
            except DeviceError as exc:
                attempt.error = exc.message
                attempt.seconds = loop.time() - started
                result.controller_error = exc
                return result
            if console is not None:
                progress(number, Step.WATCH)
                await watch.boot(attempt, ready)
            attempt.seconds = loop.time() - started
            if attempt.boot_seen is None:
                return result
            if attempt.boot_seen:
                progress(number, Step.BOOTED)
                return result
            progress(number, Step.NOT_BOOTED)
        return result
    finally:
        if console is not None:
            with contextlib.suppress(Exception):
                await console.close()


class _Watch:
    """The console across attempts: drained before each ``on``, reopened when it broke."""

    def __init__(self, console: ConsoleProtocol | None, plan: CyclePlan) -> None:
        self._console = console
        self._plan = plan
        self._broken: DeviceError | None = None

    async def ready(self) -> DeviceError | None:
        """Drain old output (reopening a console that broke); the error if it cannot be watched."""
        console = self._console
        if console is None:
            return None
        if self._broken is None:
            try:
                await console.read(timeout=0)
                return None
            except DeviceError as exc:
                self._broken = exc
        with contextlib.suppress(Exception):
            await console.close()
        try:
            await console.open(timeout=self._plan.console_open_timeout_s)
        except DeviceError as exc:
            self._broken = exc
            return exc
        self._broken = None
        return None

    async def boot(self, attempt: Attempt, not_ready: DeviceError | None) -> None:
        """Watch for the boot pattern; records what was seen or why not."""
        console = self._console
        assert console is not None
        if not_ready is not None:
            attempt.boot_seen = False
            attempt.error = f"the console could not be reopened: {not_ready.message}"
            return
        try:
            found = await console.expect(self._plan.boot_pattern, timeout=self._plan.boot_timeout_s)
        except Timeout as exc:
            attempt.boot_seen = False
            attempt.error = exc.message
            return
        except DeviceError as exc:
            self._broken = exc
            attempt.boot_seen = False
            attempt.error = f"the console failed while watching: {exc.message}"
            return
        attempt.boot_seen = True
        attempt.seen = found.text[:200]
