"""Flash drivers by name: the built-in ones, listed here, and a site's own from entry points.

Nothing registers itself on import. ``BUILTIN`` is the list below; a site's drivers are
packages that declare an entry point in the ``labfleet.flash_drivers`` group whose object
is a ``FlashDriver``, and they are added only when ``with_site_drivers()`` is called.

A driver is built from its name, its parameters (the wiring the API accepted, as a
mapping) and what it needs to reach the flash host::

    flash = build_flash("dd", {"device": "/dev/sdb"}, FlashDeps(runner=ssh_runner, transfer=sftp_put))
    digest = await flash.write(image, timeout=600, progress=on_progress)

Parameters the driver's resource does not have (``host``, ``ssh_port``: how to reach the
flash host) are the caller's business and are ignored here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from labfleet.errors import Conflict, Invalid, NotFound
from labfleet.hw.commands import CommandRunner
from labfleet.hw.flash.block import BlockDevice, BlockFlash
from labfleet.hw.flash.command import CommandFlash, FlashCommands
from labfleet.hw.flash.dfu_util import DfuDevice, DfuUtilFlash
from labfleet.hw.flash.fastboot import FastbootFlash, FastbootTarget
from labfleet.hw.flash.openocd import OpenOcdFlash, OpenOcdTarget
from labfleet.hw.flash.protocol import FileTransfer, FlashProtocol

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")

ENTRY_POINT_GROUP = "labfleet.flash_drivers"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashDeps:
    """How a driver reaches its flash host; each driver takes what it needs."""

    runner: CommandRunner | None = None
    """Bound to the flash host (the labfleet host for site commands)."""
    transfer: FileTransfer | None = None
    """Stages an image on the flash host; every driver but ``command`` needs one."""


@dataclass(frozen=True, slots=True)
class FlashDriver(Generic[R]):
    """A driver's name, the resource its parameters make, and how to build it."""

    name: str
    resource: type[R]
    build: Callable[[R, FlashDeps], FlashProtocol]


def _runner(deps: FlashDeps, name: str) -> CommandRunner:
    if deps.runner is None:
        raise Invalid(f"flash driver {name} needs a command runner on its flash host")
    return deps.runner


def _transfer(deps: FlashDeps, name: str) -> FileTransfer:
    if deps.transfer is None:
        raise Invalid(f"flash driver {name} needs a file transfer to its flash host")
    return deps.transfer


BUILTIN: Mapping[str, FlashDriver[Any]] = MappingProxyType(
    {
        driver.name: driver
        for driver in (
            FlashDriver(
                "dd",
                BlockDevice,
                lambda target, deps: BlockFlash(
                    target, _runner(deps, "dd"), _transfer(deps, "dd"), tool="dd"
                ),
            ),
            FlashDriver(
                "bmaptool",
                BlockDevice,
                lambda target, deps: BlockFlash(
                    target, _runner(deps, "bmaptool"), _transfer(deps, "bmaptool"), tool="bmaptool"
                ),
            ),
            FlashDriver(
                "fastboot",
                FastbootTarget,
                lambda target, deps: FastbootFlash(
                    target, _runner(deps, "fastboot"), _transfer(deps, "fastboot")
                ),
            ),
            FlashDriver(
                "dfu-util",
                DfuDevice,
                lambda target, deps: DfuUtilFlash(
                    target, _runner(deps, "dfu-util"), _transfer(deps, "dfu-util")
                ),
            ),
            FlashDriver(
                "openocd",
                OpenOcdTarget,
                lambda target, deps: OpenOcdFlash(
                    target, _runner(deps, "openocd"), _transfer(deps, "openocd")
                ),
            ),
            FlashDriver(
                "command",
                FlashCommands,
                lambda commands, deps: CommandFlash(commands, _runner(deps, "command")),
            ),
        )
    }
)


def with_site_drivers(
    found: Iterable[EntryPoint] | None = None, *, builtin: Mapping[str, FlashDriver[Any]] = BUILTIN
) -> Mapping[str, FlashDriver[Any]]:
    """The built-in drivers and those of the ``labfleet.flash_drivers`` entry points.

    A site driver may not take a built-in's name, and its entry point's name must be the
    driver's own.
    """
    drivers = dict(builtin)
    for entry in entry_points(group=ENTRY_POINT_GROUP) if found is None else found:
        driver = entry.load()
        if not isinstance(driver, FlashDriver):
            raise Invalid(f"entry point {entry.name} ({entry.value}) is not a FlashDriver")
        if driver.name != entry.name:
            raise Invalid(f"entry point {entry.name} names a driver called {driver.name}")
        if driver.name in drivers:
            raise Conflict(f"flash driver {driver.name} is already registered")
        drivers[driver.name] = driver
    return MappingProxyType(drivers)


def build_flash(
    name: str,
    params: Mapping[str, object],
    deps: FlashDeps,
    *,
    drivers: Mapping[str, FlashDriver[Any]] = BUILTIN,
) -> FlashProtocol:
    """The driver called ``name``, for the target ``params`` describe."""
    driver = drivers.get(name)
    if driver is None:
        raise NotFound(
            f"no flash driver called {name!r}; known: {', '.join(sorted(drivers))}", field="driver"
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
