"""Flashing a block device on a flash host (an SD mux, a USB card reader) with dd or bmaptool.

The target may also be an image file (a QEMU board's disk). Verifying reads back as
many bytes as the image has and hashes them on the flash host::

    head -c <image size> /dev/sdX | sha256sum

after flushing the block device's buffers, so the read comes from the medium rather
than from the page cache.

bmaptool writes the whole image (``--nobmap``): with a block map it would skip the
image's holes, whose bytes on the medium are then whatever they were, and a read-back
of the whole image could not match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from labfleet.errors import Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.flash.protocol import FileTransfer, ImageDigest
from labfleet.hw.flash.staging import DEFAULT_STAGING, ReadBackFlash, check_staging_dir, sha256_in

BlockTool = Literal["dd", "bmaptool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockDevice:
    device: str
    """The block device (``/dev/sdb``) or image file on the flash host."""
    staging_dir: str = DEFAULT_STAGING

    def __post_init__(self) -> None:
        if not re.fullmatch(r"/[A-Za-z0-9/_.-]+", self.device):
            raise Invalid("a device is an absolute path such as /dev/sdb", field="device")
        check_staging_dir(self.staging_dir)


class BlockFlash(ReadBackFlash):
    """Writes images to ``target`` with ``tool`` through ``runner`` (the flash host)."""

    def __init__(
        self, target: BlockDevice, runner: CommandRunner, transfer: FileTransfer, *, tool: BlockTool = "dd"
    ) -> None:
        self._target = target
        self._runner = runner
        self._transfer = transfer
        self._tool = tool
        self._staging_dir = target.staging_dir
        self._slot = f"{tool}{target.device}"
        self._what = f"{runner.where}: {tool} to {target.device}"

    async def _write_staged(self, path: str, timeout: float) -> None:
        device = self._target.device
        if self._tool == "bmaptool":
            command = quote("bmaptool", "copy", "--nobmap", path, device)
        else:
            # notrunc: an image file as target is written in place, like a device.
            command = quote("dd", f"if={path}", f"of={device}", "bs=4M", "conv=fsync,notrunc", "status=none")
        await self._runner.run(command, timeout=timeout)

    async def _matches(self, expected: ImageDigest, timeout: float) -> bool:
        device = quote(self._target.device)
        command = (
            f"test -r {device} || {{ echo cannot read {device} >&2; exit 2; }}; "
            f"if [ -b {device} ]; then blockdev --flushbufs {device}; fi; "
            f"head -c {int(expected.size)} {device} | sha256sum"
        )
        result = await self._runner.run(command, timeout=timeout)
        return sha256_in(result.stdout, self._what) == expected.sha256.lower()
