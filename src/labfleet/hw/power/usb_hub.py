"""Power through one port of a USB hub with per-port power switching, by uhubctl.

``uhubctl -l <location> -p <port> [-a on|off|cycle]`` runs on the host the hub is
plugged into. It prints each hub's port status bits::

    Current status for hub 1-1.4 [2109:2817 VIA Labs, Inc. USB2.0 Hub, USB 2.10, 4 ports, ppps]
      Port 2: 0503 power highspeed enable connect [0483:3748 STMicroelectronics STLink]
    Sent power off request
    New status for hub 1-1.4 [...]
      Port 2: 0000 off

so the state is read from the port's line, and a switch is confirmed from the new status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.power.protocol import Outlet, PowerState

_HUB = re.compile(r"^(Current|New) status for hub (\S+)")
_PORT = re.compile(r"^\s+Port (\d+):\s+[0-9a-fA-F]{4}\b(.*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class UsbHubPort:
    location: str
    """uhubctl's hub location, e.g. ``1-1.4``."""
    port: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9][0-9.-]*", self.location):
            raise Invalid("a hub location looks like 1-1.4", field="location")
        if self.port < 1:
            raise Invalid("hub ports are numbered from 1", field="port")


def port_state(output: str, location: str, port: int, *, heading: str = "Current") -> PowerState | None:
    """The state of ``port`` in the last ``heading`` status of hub ``location``, if uhubctl printed it."""
    found: PowerState | None = None
    in_hub = False
    for line in output.splitlines():
        hub = _HUB.match(line)
        if hub is not None:
            in_hub = hub.group(1) == heading and hub.group(2) == location
            continue
        status = _PORT.match(line)
        if in_hub and status is not None and int(status.group(1)) == port:
            flags = status.group(2).split()
            found = PowerState.OFF if "off" in flags else PowerState.ON if "power" in flags else None
    return found


class UsbHubPower:
    """One port of a hub, switched by uhubctl through ``runner`` (the hub's host)."""

    def __init__(self, port: UsbHubPort, runner: CommandRunner) -> None:
        self._location = port.location
        self._port = port.port
        self._runner = runner
        self._outlet = Outlet(
            f"uhubctl {runner.where} {port.location}",
            str(port.port),
            f"{runner.where}: USB hub {port.location} port {port.port}",
        )

    async def on(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._switch("on", left()))

    async def off(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._switch("off", left()))

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        command = self._command("-a", "cycle", "-d", f"{max(0.0, delay):g}")
        await self._outlet.exclusive(timeout, lambda left: self._runner.run(command, timeout=left()))

    async def state(self, *, timeout: float) -> PowerState:
        return await self._outlet.exclusive(timeout, lambda left: self._read(left()))

    async def _switch(self, action: str, timeout: float) -> None:
        result = await self._runner.run(self._command("-a", action), timeout=timeout)
        now = port_state(result.stdout, self._location, self._port, heading="New")
        # A hub that claims per-port switching but gangs its ports reports the port unchanged.
        if now is not None and now is not PowerState(action):
            raise DeviceError(f"{self._outlet.what}: switched {action}, but uhubctl reports the port {now}")

    async def _read(self, timeout: float) -> PowerState:
        result = await self._runner.run(self._command(), timeout=timeout)
        state = port_state(result.stdout, self._location, self._port)
        if state is None:
            tail = result.stdout.strip()[-300:]
            raise DeviceError(f"{self._outlet.what}: uhubctl did not report this port: {tail!r}")
        return state

    def _command(self, *args: str) -> str:
        return quote("uhubctl", "-l", self._location, "-p", self._port, *args)
