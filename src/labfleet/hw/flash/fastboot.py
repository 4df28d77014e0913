"""Flashing a partition of a board in its bootloader's fastboot mode, from a flash host.

``fastboot [-s <serial>] flash <partition> <image>``; the bootloader acknowledges the
download and the write with ``OKAY`` (``FAILED (remote: ...)`` and a non-zero exit
otherwise). Bootloaders cannot read a partition back, so verifying rests on what can
be checked: the staged image is the expected one byte for byte (checked on staging),
the bootloader accepted it, and ``fastboot getvar partition-size:<partition>`` says it
fits. A later ``verify`` can only vouch for an image this driver wrote itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandResult, CommandRunner, quote
from labfleet.hw.flash.protocol import FileTransfer, ImageDigest, Progress
from labfleet.hw.flash.staging import DEFAULT_STAGING, check_staging_dir, staged_write
from labfleet.hw.translate import deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class FastbootTarget:
    partition: str = "boot"
    serial: str | None = None
    """The device's serial number (``fastboot -s``); needed when a host has several."""
    staging_dir: str = DEFAULT_STAGING

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.partition):
            raise Invalid("a partition is a name such as boot or system_a", field="partition")
        if self.serial is not None and not re.fullmatch(r"[!-~]+", self.serial):
            raise Invalid("a serial number has no blanks", field="serial")
        check_staging_dir(self.staging_dir)


def getvar(result: CommandResult, name: str) -> str | None:
    """The value ``fastboot getvar <name>`` printed (on stderr, like all of fastboot's output)."""
    found = re.search(rf"^{re.escape(name)}:[ \t]*(.*?)\s*$", result.stderr + result.stdout, re.MULTILINE)
    return found.group(1) if found is not None and found.group(1) else None


class FastbootFlash:
    """Writes images to a partition of the fastboot device ``target`` through ``runner``."""

    def __init__(self, target: FastbootTarget, runner: CommandRunner, transfer: FileTransfer) -> None:
        self._target = target
        self._runner = runner
        self._transfer = transfer
        self._device = ("-s", target.serial) if target.serial else ()
        self._what = f"{runner.where}: fastboot {target.serial or 'device'} {target.partition}"
        self._written: ImageDigest | None = None

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        self._written = None
        digest = await staged_write(
            image,
            runner=self._runner,
            transfer=self._transfer,
            staging_dir=self._target.staging_dir,
            slot=f"fastboot-{self._target.serial or 'device'}-{self._target.partition}",
            what=self._what,
            timeout=timeout,
            progress=progress,
            write=self._flash,
            verify=lambda staged, left: self._fits(staged.digest, left),
        )
        self._written = digest
        return digest

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        if self._written is None:
            raise DeviceError(f"{self._what}: fastboot cannot read a partition back to verify it")
        async with deadline(self._what, timeout) as left:
            return self._written == expected and await self._fits(expected, left())

    async def read_version(self, *, timeout: float) -> str | None:
        async with deadline(self._what, timeout) as left:
            return await self._getvar("version-bootloader", left())

    async def _flash(self, path: str, timeout: float) -> None:
        command = quote("fastboot", *self._device, "flash", self._target.partition, path)
        await self._runner.run(command, timeout=timeout)

    async def _fits(self, digest: ImageDigest, timeout: float) -> bool:
        size = await self._getvar(f"partition-size:{self._target.partition}", timeout)
        if size is None:
            return True  # not every bootloader tells; its OKAY to the write is then all there is
        try:
            return digest.size <= int(size, 16)
        except ValueError:
            raise DeviceError(f"{self._what}: partition size {size!r} is not a number") from None

    async def _getvar(self, name: str, timeout: float) -> str | None:
        command = quote("fastboot", *self._device, "getvar", name)
        result = await self._runner.run(command, timeout=timeout, check=False)
        if result.exit_status != 0:
            if re.search(r"not found|unknown|not supported", result.stderr, re.IGNORECASE):
                return None
            result.checked(command, self._runner.where)
        return getvar(result, name)
