"""Flashing a microcontroller through a debug probe with OpenOCD, from the probe's host.

Writes with OpenOCD's ``program`` helper, which erases, writes, reads the flash back
against the file, resets and exits::

    openocd -f board/stm32f4discovery.cfg -c "program /var/tmp/.../fw.bin verify reset exit 0x08000000"

The address is passed for raw binaries (``.bin``) only: for ELF and Intel HEX files
OpenOCD takes the addresses from the file and would add the offset to them.

``verify`` checks that the staged file is the expected image, then has OpenOCD compare
the target's flash with it (``verify_image``) without writing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.flash.protocol import FileTransfer, ImageDigest, Progress
from labfleet.hw.flash.staging import DEFAULT_STAGING, check_staging_dir, sha256_in, staged_write
from labfleet.hw.translate import deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenOcdTarget:
    config: str
    """OpenOCD configuration file(s), blank-separated, each given with ``-f``."""
    address: str = "0x08000000"
    """Where a raw binary goes in the target's memory."""
    staging_dir: str = DEFAULT_STAGING

    def __post_init__(self) -> None:
        if not self.config.split():
            raise Invalid("at least one OpenOCD configuration file is needed", field="config")
        if not re.fullmatch(r"0x[0-9a-fA-F]+", self.address):
            raise Invalid("an address is hexadecimal, e.g. 0x08000000", field="address")
        check_staging_dir(self.staging_dir)


class OpenOcdFlash:
    """Writes images through the OpenOCD configuration of ``target``, on ``runner``'s host."""

    def __init__(self, target: OpenOcdTarget, runner: CommandRunner, transfer: FileTransfer) -> None:
        self._target = target
        self._runner = runner
        self._transfer = transfer
        self._configs = [word for config in target.config.split() for word in ("-f", config)]
        self._slot = "openocd-" + "-".join(Path(config).stem for config in target.config.split())
        self._what = f"{runner.where}: openocd {target.config}"
        self._staged: str | None = None

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        self._staged = None

        async def program(path: str, left: float) -> None:
            self._staged = path
            await self._openocd(f"program {path} verify reset exit{self._offset(path)}", timeout=left)

        # program's own "verify" compared the flash with the file; a failed compare fails the write.
        async def verified(_staged: object, _left: float) -> bool:
            return True

        return await staged_write(
            image,
            runner=self._runner,
            transfer=self._transfer,
            staging_dir=self._target.staging_dir,
            slot=self._slot,
            what=self._what,
            timeout=timeout,
            progress=progress,
            write=program,
            verify=verified,
        )

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        path = self._staged
        if path is None:
            raise DeviceError(f"{self._what}: nothing staged to compare the target's flash with")
        async with deadline(self._what, timeout) as left:
            staged = await self._runner.run(quote("sha256sum", path), timeout=left())
            if sha256_in(staged.stdout, self._what) != expected.sha256.lower():
                return False
            result = await self._runner.run(
                self._command(
                    "init", "reset init", f"verify_image {path}{self._offset(path)}", "reset run", "shutdown"
                ),
                timeout=left(),
                check=False,
            )
        output = result.stdout + result.stderr
        if result.exit_status == 0 and "verified" in output:
            return True
        if re.search(r"checksum mismatch|\bdiff\b|verify failed", output, re.IGNORECASE):
            return False
        result.checked("openocd verify_image", self._runner.where)
        raise DeviceError(f"{self._what}: verify_image said neither verified nor mismatch: {output[-300:]!r}")

    async def read_version(self, *, timeout: float) -> str | None:
        return None

    def _offset(self, path: str) -> str:
        return f" {self._target.address}" if path.lower().endswith(".bin") else ""

    async def _openocd(self, script: str, *, timeout: float) -> None:
        await self._runner.run(self._command(script), timeout=timeout)

    def _command(self, *scripts: str) -> str:
        return quote("openocd", *self._configs, *(word for script in scripts for word in ("-c", script)))
