"""Flash drivers by name: the built-in ones, listed here, and a site's own from entry points.

Nothing registers itself on import (see ``hw/registry.py``). ``BUILTIN`` is the list
below; a site's drivers declare entry points in the ``labfleet.flash_drivers`` group
whose object is a ``FlashDriver``, added only when ``with_site_drivers()`` is called.

A driver is built from its name, its parameters (the wiring the API accepted, as a
mapping) and what it needs to reach the flash host::

    flash = build_flash("dd", {"device": "/dev/sdb"}, FlashDeps(runner=ssh_runner, transfer=sftp_put))
    digest = await flash.write(image, timeout=600, progress=on_progress)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any

from labfleet.hw import registry
from labfleet.hw.commands import CommandRunner
from labfleet.hw.flash.block import BlockDevice, BlockFlash
from labfleet.hw.flash.command import CommandFlash, FlashCommands
from labfleet.hw.flash.dfu_util import DfuDevice, DfuUtilFlash
from labfleet.hw.flash.fastboot import FastbootFlash, FastbootTarget
from labfleet.hw.flash.openocd import OpenOcdFlash, OpenOcdTarget
from labfleet.hw.flash.protocol import FileTransfer, FlashProtocol
from labfleet.hw.registry import resource_from

__all__ = ["BUILTIN", "ENTRY_POINT_GROUP", "FlashDeps", "FlashDriver", "build_flash", "resource_from"]

ENTRY_POINT_GROUP = "labfleet.flash_drivers"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashDeps:
    """How a driver reaches its flash host; each driver takes what it needs."""

    runner: CommandRunner | None = None
    """Bound to the flash host (the labfleet host for site commands)."""
    transfer: FileTransfer | None = None
    """Stages an image on the flash host; every driver but ``command`` needs one."""


@dataclass(frozen=True, slots=True)
class FlashDriver(registry.Driver[Any, FlashDeps, FlashProtocol]):
    """A flash driver: its name, the resource its parameters make, and how to build it."""


def _runner(deps: FlashDeps, name: str) -> CommandRunner:
    return registry.needs(deps.runner, f"flash driver {name} needs a command runner on its flash host")


def _staged(
    make: Callable[[Any, CommandRunner, FileTransfer], FlashProtocol], name: str
) -> Callable[[Any, FlashDeps], FlashProtocol]:
    """A builder for a driver that stages the image on the flash host, then runs a tool."""

    def build(target: Any, deps: FlashDeps) -> FlashProtocol:
        transfer = registry.needs(
            deps.transfer, f"flash driver {name} needs a file transfer to its flash host"
        )
        return make(target, _runner(deps, name), transfer)

    return build


BUILTIN: Mapping[str, FlashDriver] = registry.by_name(
    (
        FlashDriver("dd", BlockDevice, _staged(lambda t, r, x: BlockFlash(t, r, x, tool="dd"), "dd")),
        FlashDriver(
            "bmaptool", BlockDevice, _staged(lambda t, r, x: BlockFlash(t, r, x, tool="bmaptool"), "bmaptool")
        ),
        FlashDriver("fastboot", FastbootTarget, _staged(FastbootFlash, "fastboot")),
        FlashDriver("dfu-util", DfuDevice, _staged(DfuUtilFlash, "dfu-util")),
        FlashDriver("openocd", OpenOcdTarget, _staged(OpenOcdFlash, "openocd")),
        FlashDriver(
            "command", FlashCommands, lambda commands, deps: CommandFlash(commands, _runner(deps, "command"))
        ),
    )
)


def with_site_drivers(
    found: Iterable[EntryPoint] | None = None, *, builtin: Mapping[str, FlashDriver] = BUILTIN
) -> Mapping[str, FlashDriver]:
    """The built-in drivers and those of the ``labfleet.flash_drivers`` entry points."""
    return registry.with_site_drivers(FlashDriver, ENTRY_POINT_GROUP, builtin, found)


def build_flash(
    name: str, params: Mapping[str, object], deps: FlashDeps, *, drivers: Mapping[str, FlashDriver] = BUILTIN
) -> FlashProtocol:
    """The driver called ``name``, for the target ``params`` describe."""
    return registry.build(drivers, "flash", name, params, deps)
