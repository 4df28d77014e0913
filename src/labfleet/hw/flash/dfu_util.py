"""Flashing a USB device in DFU mode with dfu-util, from the flash host it is plugged into.

Writes with ``dfu-util -d <vid:pid> -a <alt> -D <image>`` and verifies by uploading as
many bytes back (``-U <file> -Z <size>``) and hashing them on the flash host. dfu-util
will not overwrite an existing upload file, so the read-back file is removed first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labfleet.errors import Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.flash.protocol import FileTransfer, ImageDigest
from labfleet.hw.flash.staging import DEFAULT_STAGING, ReadBackFlash, check_staging_dir, sha256_in


@dataclass(frozen=True, slots=True, kw_only=True)
class DfuDevice:
    device: str
    """USB vendor:product in hex, e.g. ``0483:df11``."""
    alt: int = 0
    """The DFU interface's alternate setting (which memory)."""
    staging_dir: str = DEFAULT_STAGING

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}", self.device):
            raise Invalid("a DFU device is vendor:product in hex, e.g. 0483:df11", field="device")
        if not 0 <= self.alt <= 255:
            raise Invalid("an alternate setting is 0 to 255", field="alt")
        check_staging_dir(self.staging_dir)


class DfuUtilFlash(ReadBackFlash):
    """Writes images to the DFU device ``target`` through ``runner`` (its flash host)."""

    def __init__(self, target: DfuDevice, runner: CommandRunner, transfer: FileTransfer) -> None:
        self._target = target
        self._runner = runner
        self._transfer = transfer
        self._staging_dir = target.staging_dir
        self._select = ("-d", target.device, "-a", target.alt)
        self._slot = f"dfu-{target.device.replace(':', '-')}-{target.alt}"
        self._what = f"{runner.where}: dfu-util {target.device} alt {target.alt}"

    async def _write_staged(self, path: str, timeout: float) -> None:
        await self._runner.run(quote("dfu-util", *self._select, "-D", path), timeout=timeout)

    async def _matches(self, expected: ImageDigest, timeout: float) -> bool:
        readback = quote(f"{self._target.staging_dir.rstrip('/')}/{self._slot}.readback")
        upload = quote("dfu-util", *self._select, "-U") + f" {readback} " + quote("-Z", int(expected.size))
        command = (
            f"mkdir -p {quote(self._target.staging_dir)} && rm -f {readback} && {upload} >&2 && "
            f"head -c {int(expected.size)} {readback} | sha256sum; status=$?; rm -f {readback}; exit $status"
        )
        result = await self._runner.run(command, timeout=timeout)
        return sha256_in(result.stdout, self._what) == expected.sha256.lower()
