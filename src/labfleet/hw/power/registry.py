"""Power drivers by name: the built-in ones, listed here, and a site's own from entry points.

Nothing registers itself on import. ``BUILTIN`` is the list below; a site's drivers are
packages that declare an entry point in the ``labfleet.power_drivers`` group whose object
is a ``PowerDriver``, and they are added only when ``with_site_drivers()`` is called.

A driver is built from its name, its parameters (the wiring the API accepted, as a
mapping) and what it needs to reach its controller::

    power = build_power("usb-hub", {"location": "1-1.4", "port": 2}, PowerDeps(runner=ssh_runner))
    await power.cycle(3, timeout=30)

Parameters the driver's resource does not have (``host``, ``ssh_port``: how to reach the
controller) are the caller's business and are ignored here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from labfleet.errors import Conflict, Invalid, NotFound
from labfleet.hw.commands import CommandRunner
from labfleet.hw.power.command import CommandPower, PowerCommands
from labfleet.hw.power.gpio_relay import GpioLine, GpioRelayPower
from labfleet.hw.power.pdudaemon import PduDaemonOutlet, PduDaemonPower
from labfleet.hw.power.protocol import PowerProtocol, StateProbe
from labfleet.hw.power.usb_hub import UsbHubPort, UsbHubPower

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

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
class PowerDriver(Generic[R]):
    """A driver's name, the resource its parameters make, and how to build it."""

    name: str
    resource: type[R]
    build: Callable[[R, PowerDeps], PowerProtocol]


def _runner(deps: PowerDeps, name: str) -> CommandRunner:
    if deps.runner is None:
        raise Invalid(f"power driver {name} needs a command runner on its controller's host")
    return deps.runner


def _http(deps: PowerDeps, name: str) -> httpx.AsyncClient:
    if deps.http is None:
        raise Invalid(f"power driver {name} needs an HTTP client")
    return deps.http


BUILTIN: Mapping[str, PowerDriver[Any]] = MappingProxyType(
    {
        driver.name: driver
        for driver in (
            PowerDriver(
                "pdudaemon",
                PduDaemonOutlet,
                lambda outlet, deps: PduDaemonPower(outlet, _http(deps, "pdudaemon"), probe=deps.probe),
            ),
            PowerDriver(
                "usb-hub", UsbHubPort, lambda port, deps: UsbHubPower(port, _runner(deps, "usb-hub"))
            ),
            PowerDriver(
                "gpio-relay", GpioLine, lambda line, deps: GpioRelayPower(line, _runner(deps, "gpio-relay"))
            ),
            PowerDriver(
                "command",
                PowerCommands,
                lambda commands, deps: CommandPower(commands, _runner(deps, "command")),
            ),
        )
    }
)


def with_site_drivers(
    found: Iterable[EntryPoint] | None = None, *, builtin: Mapping[str, PowerDriver[Any]] = BUILTIN
) -> Mapping[str, PowerDriver[Any]]:
    """The built-in drivers and those of the ``labfleet.power_drivers`` entry points.

    A site driver may not take a built-in's name, and its entry point's name must be the
    driver's own.
    """
    drivers = dict(builtin)
    for entry in entry_points(group=ENTRY_POINT_GROUP) if found is None else found:
        driver = entry.load()
        if not isinstance(driver, PowerDriver):
            raise Invalid(f"entry point {entry.name} ({entry.value}) is not a PowerDriver")
        if driver.name != entry.name:
            raise Invalid(f"entry point {entry.name} names a driver called {driver.name}")
        if driver.name in drivers:
            raise Conflict(f"power driver {driver.name} is already registered")
        drivers[driver.name] = driver
    return MappingProxyType(drivers)


def build_power(
    name: str,
    params: Mapping[str, object],
    deps: PowerDeps,
    *,
    drivers: Mapping[str, PowerDriver[Any]] = BUILTIN,
) -> PowerProtocol:
    """The driver called ``name``, for the outlet ``params`` describe."""
    driver = drivers.get(name)
    if driver is None:
        raise NotFound(
            f"no power driver called {name!r}; known: {', '.join(sorted(drivers))}", field="driver"
        )
    return driver.build(resource_from(driver.resource, params), deps)


def resource_from(resource: type[R], params: Mapping[str, object]) -> R:
    """A resource from the parameters it has; ``Invalid`` naming a missing one."""
    fields = dataclasses.fields(resource)
    for field in fields:
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if required and field.name not in params:
            raise Invalid(f"{field.name} is required", field=field.name)
    return resource(**{field.name: params[field.name] for field in fields if field.name in params})
