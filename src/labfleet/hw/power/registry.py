"""Power drivers by name: the built-in ones, listed here, and a site's own from entry points.

Nothing registers itself on import (see ``hw/registry.py``). ``BUILTIN`` is the list
below; a site's drivers declare entry points in the ``labfleet.power_drivers`` group
whose object is a ``PowerDriver``, added only when ``with_site_drivers()`` is called.

A driver is built from its name, its parameters (the wiring the API accepted, as a
mapping) and what it needs to reach its controller::

    power = build_power("usb-hub", {"location": "1-1.4", "port": 2}, PowerDeps(runner=ssh_runner))
    await power.cycle(3, timeout=30)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

import httpx

from labfleet.hw import registry
from labfleet.hw.commands import CommandRunner
from labfleet.hw.power.command import CommandPower, PowerCommands
from labfleet.hw.power.gpio_relay import GpioLine, GpioRelayPower
from labfleet.hw.power.pdudaemon import PduDaemonOutlet, PduDaemonPower
from labfleet.hw.power.protocol import PowerProtocol, StateProbe
from labfleet.hw.power.usb_hub import UsbHubPort, UsbHubPower
from labfleet.hw.registry import resource_from

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "PowerDeps", "PowerDriver", "build_power", "resource_from"]


ENTRY_POINT_GROUP = "labfleet.power_drivers"


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerDeps:
    """How a driver reaches its controller; each driver takes what it needs."""

    runner: CommandRunner | None = None
    """Bound to the controller's host: uhubctl, gpioset, site commands."""
    http: httpx.AsyncClient | None = None
    """For pdudaemon; one client may serve every outlet."""
    probe: StateProbe | None = None
    """Reads the state where the controller cannot (pdudaemon)."""


@dataclass(frozen=True, slots=True)
class PowerDriver(registry.Driver[Any, PowerDeps, PowerProtocol]):
    """A power driver: its name, the resource its parameters make, and how to build it."""


def _runner(deps: PowerDeps, name: str) -> CommandRunner:
    return registry.needs(deps.runner, f"power driver {name} needs a command runner on its controller's host")


def _http(deps: PowerDeps, name: str) -> httpx.AsyncClient:
    return registry.needs(deps.http, f"power driver {name} needs an HTTP client")


BUILTIN: Mapping[str, PowerDriver] = registry.by_name(
    (
        PowerDriver(
            "pdudaemon",
            PduDaemonOutlet,
            lambda outlet, deps: PduDaemonPower(outlet, _http(deps, "pdudaemon"), probe=deps.probe),
        ),
        PowerDriver("usb-hub", UsbHubPort, lambda port, deps: UsbHubPower(port, _runner(deps, "usb-hub"))),
        PowerDriver(
            "gpio-relay", GpioLine, lambda line, deps: GpioRelayPower(line, _runner(deps, "gpio-relay"))
        ),
        PowerDriver(
            "command", PowerCommands, lambda commands, deps: CommandPower(commands, _runner(deps, "command"))
        ),
    )
)


def with_site_drivers(
    found: Iterable[EntryPoint] | None = None, *, builtin: Mapping[str, PowerDriver] = BUILTIN
) -> Mapping[str, PowerDriver]:
    """The built-in drivers and those of the ``labfleet.power_drivers`` entry points."""
    return registry.with_site_drivers(PowerDriver, ENTRY_POINT_GROUP, builtin, found)


def build_power(
    name: str, params: Mapping[str, object], deps: PowerDeps, *, drivers: Mapping[str, PowerDriver] = BUILTIN
) -> PowerProtocol:
    """The driver called ``name``, for the outlet ``params`` describe."""
    return registry.build(drivers, "power", name, params, deps)
