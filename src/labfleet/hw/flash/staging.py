"""Staging an image on a flash host, then writing and verifying it there.

Drivers that run a tool on a flash host (dd, bmaptool, fastboot, dfu-util, openocd)
first copy the image there through an injected ``FileTransfer``, which returns the
sha256 of the file as it landed; the staged copy must be the local image byte for byte,
or the write stops before the tool runs.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.flash.protocol import FileTransfer, ImageDigest, Phase, Progress, digest_of, report
from labfleet.hw.translate import deadline

DEFAULT_STAGING = "/var/lib/labfleet/flash"
"""Where images are staged on a flash host, one per target (not a world-writable directory)."""

_SAFE_PATH = re.compile(r"/[A-Za-z0-9/_.+-]*")


def check_staging_dir(path: str) -> None:
    """Staging paths end up in tool command lines (openocd's Tcl among them): plain characters only."""
    if not _SAFE_PATH.fullmatch(path):
        raise Invalid(
            "the staging directory is an absolute path of letters, digits and /_.+-", field="staging_dir"
        )


@dataclass(frozen=True, slots=True)
class Staged:
    path: str
    """The image on the flash host."""
    digest: ImageDigest


async def stage(
    image: Path,
    *,
    runner: CommandRunner,
    transfer: FileTransfer,
    staging_dir: str,
    slot: str,
    left: Callable[[], float],
    progress: Progress | None,
) -> Staged:
    """Copies ``image`` to ``staging_dir`` on the flash host as ``<slot><suffix>``.

    One slot per flash target, overwritten by each write: the flash host keeps one staged
    image per target, and two targets never share one.
    """
    digest = await digest_of(image)
    report(progress, Phase.STAGE, 0, digest.size)
    # The suffix stays: tools such as openocd tell an ELF or HEX file from a raw binary by it.
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", slot + image.suffix).strip("-.") or "image"
    remote = f"{staging_dir.rstrip('/')}/{name}"
    await runner.run(quote("mkdir", "-p", staging_dir), timeout=left())
    landed = await transfer(image, remote, timeout=left())
    if landed.strip().lower() != digest.sha256:
        raise DeviceError(
            f"{runner.where}: {remote} does not match {image.name} after the transfer "
            f"(sha256 {landed.strip()[:16]}…, expected {digest.sha256[:16]}…)"
        )
    report(progress, Phase.STAGE, digest.size, digest.size)
    return Staged(remote, digest)


def sha256_in(output: str, what: str) -> str:
    """The digest ``sha256sum`` printed."""
    found = re.search(r"\b([0-9a-fA-F]{64})\b", output)
    if found is None:
        raise DeviceError(f"{what}: no sha256 in {output.strip()[:200]!r}")
    return found.group(1).lower()


async def staged_write(
    image: Path,
    *,
    runner: CommandRunner,
    transfer: FileTransfer,
    staging_dir: str,
    slot: str,
    what: str,
    timeout: float,
    progress: Progress | None,
    write: Callable[[str, float], Awaitable[None]],
    verify: Callable[[Staged, float], Awaitable[bool]],
) -> ImageDigest:
    """Stage, ``write(staged path, time left)``, ``verify(staged, time left)``, all within ``timeout``."""
    async with deadline(what, timeout) as left:
        staged = await stage(
            image,
            runner=runner,
            transfer=transfer,
            staging_dir=staging_dir,
            slot=slot,
            left=left,
            progress=progress,
        )
        size = staged.digest.size
        report(progress, Phase.WRITE, 0, size)
        await write(staged.path, left())
        report(progress, Phase.WRITE, size, size)
        report(progress, Phase.VERIFY, 0, size)
        if not await verify(staged, left()):
            raise DeviceError(f"{what}: after writing {image.name}, the target does not hold it")
        report(progress, Phase.VERIFY, size, size)
        report(progress, Phase.DONE, size, size)
    return staged.digest


class ReadBackFlash:
    """A driver that stages the image, runs its tool, then reads the target back to compare.

    Subclasses set ``_runner``, ``_transfer``, ``_staging_dir``, ``_slot`` and ``_what``,
    and implement ``_write_staged`` (run the tool on the staged path) and ``_matches``
    (read the first ``size`` bytes back and compare their sha256).
    """

    _runner: CommandRunner
    _transfer: FileTransfer
    _staging_dir: str
    _slot: str
    _what: str

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        return await staged_write(
            image,
            runner=self._runner,
            transfer=self._transfer,
            staging_dir=self._staging_dir,
            slot=self._slot,
            what=self._what,
            timeout=timeout,
            progress=progress,
            write=self._write_staged,
            verify=lambda staged, left: self._matches(staged.digest, left),
        )

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        async with deadline(self._what, timeout) as left:
            return await self._matches(expected, left())

    async def read_version(self, *, timeout: float) -> str | None:
        return None

    async def _write_staged(self, path: str, timeout: float) -> None:
        raise NotImplementedError

    async def _matches(self, expected: ImageDigest, timeout: float) -> bool:
        raise NotImplementedError
