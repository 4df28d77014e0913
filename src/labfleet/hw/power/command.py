"""Power through a site's own commands: one to switch on, one to switch off, one to tell.

The state command prints ``on`` or ``off`` (``unknown`` if it cannot tell). The commands
run through a ``CommandRunner``: the labfleet host itself for site hooks, or any host
a runner reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from labfleet.errors import Invalid
from labfleet.hw.commands import CommandRunner
from labfleet.hw.power.protocol import Outlet, PowerState, off_then_on, parse_state


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerCommands:
    on: str
    off: str
    state: str | None = None
    """Prints ``on`` or ``off``."""

    def __post_init__(self) -> None:
        for name in ("on", "off", "state"):
            command = getattr(self, name)
            if command is not None and not command.strip():
                raise Invalid("a command must not be empty", field=name)


class CommandStateProbe:
    """A state command, as a probe for controllers that cannot tell (pdudaemon)."""

    def __init__(self, runner: CommandRunner, command: str) -> None:
        self._runner = runner
        self._command = command

    async def __call__(self, *, timeout: float) -> PowerState:
        result = await self._runner.run(self._command, timeout=timeout)
        return parse_state(result.stdout, f"{self._runner.where}: `{self._command}`")


class CommandPower:
    """A board switched by site commands run through ``runner``."""

    def __init__(self, commands: PowerCommands, runner: CommandRunner) -> None:
        self._commands = commands
        self._runner = runner
        self._probe = CommandStateProbe(runner, commands.state) if commands.state else None
        # The on command names what it switches better than anything else this driver knows.
        self._outlet = Outlet(f"command {runner.where}", commands.on, f"{runner.where}: power commands")

    async def on(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._run(self._commands.on, left()))

    async def off(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._run(self._commands.off, left()))

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        await self._outlet.exclusive(
            timeout,
            lambda left: off_then_on(
                lambda: self._run(self._commands.off, left()),
                lambda: self._run(self._commands.on, left()),
                delay,
            ),
        )

    async def state(self, *, timeout: float) -> PowerState:
        if self._probe is None:
            return PowerState.UNKNOWN
        probe = self._probe
        return await self._outlet.exclusive(timeout, lambda left: probe(timeout=left()))

    async def _run(self, command: str, timeout: float) -> None:
        await self._runner.run(command, timeout=timeout)
