"""A board in memory for power tests: an outlet that remembers its calls and a console that
prints the boot banner (or not) when the board gets power, as scripted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from labfleet.hw.console import ConsoleProtocol
from labfleet.hw.fakes import FakeConsole, FakePower
from labfleet.hw.power import PowerProtocol
from labfleet.services.power.access import BoardWiring

BANNER = "labfleet-lab: fake booted"


@dataclass
class BootingPower(FakePower):
    """An outlet whose ``on`` makes the console print a boot, or a panic, as ``boots`` says.

    ``boots`` is consumed one per ``on``; once empty, every boot succeeds.
    """

    console: FakeConsole | None = None
    boots: list[bool] = field(default_factory=list)
    banner: str = BANNER
    hold: asyncio.Event | None = None
    """While set and not yet released, ``off`` waits: an action that keeps the board busy."""
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def off(self, *, timeout: float) -> None:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        await super().off(timeout=timeout)

    async def on(self, *, timeout: float) -> None:
        await super().on(timeout=timeout)
        if self.console is not None:
            booted = self.boots.pop(0) if self.boots else True
            self.console.output += (
                f"\r\nLinux version 6.1\r\n{self.banner}\r\n/ # "
                if booted
                else "\r\nLinux version 6.1\r\nKernel panic - not syncing: VFS\r\n"
            )


@dataclass
class FakeHardware:
    """A ``Hardware`` that hands out one fake outlet and console per board id."""

    powers: dict[int, PowerProtocol] = field(default_factory=dict)
    consoles: dict[int, ConsoleProtocol | None] = field(default_factory=dict)

    def board(self, board_id: int, *, boots: list[bool] | None = None, console: bool = True) -> BootingPower:
        fake_console = FakeConsole() if console else None
        power = BootingPower(console=fake_console, boots=list(boots or []))
        self.powers[board_id] = power
        self.consoles[board_id] = fake_console
        return power

    def power(self, wiring: BoardWiring) -> PowerProtocol:
        return self.powers[wiring.board_id]

    def console(self, wiring: BoardWiring) -> ConsoleProtocol | None:
        return self.consoles.get(wiring.board_id)
