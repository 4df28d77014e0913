"""Flashing boards: ``FlashProtocol``, one driver per tool, and the registry by name."""

from labfleet.hw.flash.block import BlockDevice, BlockFlash
from labfleet.hw.flash.command import CommandFlash, FlashCommands
from labfleet.hw.flash.dfu_util import DfuDevice, DfuUtilFlash
from labfleet.hw.flash.fastboot import FastbootFlash, FastbootTarget
from labfleet.hw.flash.openocd import OpenOcdFlash, OpenOcdTarget
from labfleet.hw.flash.protocol import (
    FileTransfer,
    FlashProgress,
    FlashProtocol,
    ImageDigest,
    Phase,
    Progress,
)
from labfleet.hw.flash.registry import (
    BUILTIN,
    ENTRY_POINT_GROUP,
    FlashDeps,
    FlashDriver,
    build_flash,
    with_site_drivers,
)
from labfleet.hw.flash.staging import DEFAULT_STAGING

__all__ = [
    "BUILTIN",
    "DEFAULT_STAGING",
    "ENTRY_POINT_GROUP",
    "BlockDevice",
    "BlockFlash",
    "CommandFlash",
    "DfuDevice",
    "DfuUtilFlash",
    "FastbootFlash",
    "FastbootTarget",
    "FileTransfer",
    "FlashCommands",
    "FlashDeps",
    "FlashDriver",
    "FlashProgress",
    "FlashProtocol",
    "ImageDigest",
    "OpenOcdFlash",
    "OpenOcdTarget",
    "Phase",
    "Progress",
    "build_flash",
    "with_site_drivers",
]
