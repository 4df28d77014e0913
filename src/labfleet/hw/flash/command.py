"""Flashing with a site's own commands: write, verify, and read the version.

The commands may use placeholders, replaced by shell-quoted values (so they are written
bare: ``flash-tool --board {board} {image}``):

- ``{image}``: the image's path where the command runs (the write's image, for verify);
- ``{board}``: the board's name;
- ``{sha256}``, ``{size}``: the expected image's digest and size (verify).

The verify command exits 0 when the board holds the image and 1 when it does not; any
other status means it could not tell. Without a verify command, verifying compares the
expected digest with that of the image this driver wrote; the version command prints the
running firmware's version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.flash.protocol import ImageDigest, Phase, Progress, digest_of, report
from labfleet.hw.translate import deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class FlashCommands:
    write: str
    verify: str | None = None
    version: str | None = None
    board: str = ""
    """The board's name, for ``{board}``."""

    def __post_init__(self) -> None:
        for name in ("write", "verify", "version"):
            command = getattr(self, name)
            if command is not None and not command.strip():
                raise Invalid("a command must not be empty", field=name)


def expand(command: str, **values: str | int) -> str:
    """``command`` with each ``{name}`` replaced by its shell-quoted value; other braces untouched."""
    for name, value in values.items():
        command = command.replace(f"{{{name}}}", quote(value))
    return command


class CommandFlash:
    """Flashes a board with site commands run through ``runner``."""

    def __init__(self, commands: FlashCommands, runner: CommandRunner) -> None:
        self._commands = commands
        self._runner = runner
        self._what = f"{runner.where}: flash commands{' for ' + commands.board if commands.board else ''}"
        self._written: tuple[Path, ImageDigest] | None = None

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        self._written = None
        async with deadline(self._what, timeout) as left:
            digest = await digest_of(image)
            report(progress, Phase.WRITE, 0, digest.size)
            command = expand(self._commands.write, image=str(image), board=self._commands.board)
            await self._runner.run(command, timeout=left())
            report(progress, Phase.WRITE, digest.size, digest.size)
            self._written = (image, digest)
            report(progress, Phase.VERIFY, 0, digest.size)
            if not await self._verify(digest, left()):
                raise DeviceError(f"{self._what}: after writing {image.name}, the board does not hold it")
            report(progress, Phase.VERIFY, digest.size, digest.size)
            report(progress, Phase.DONE, digest.size, digest.size)
        return digest

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        async with deadline(self._what, timeout) as left:
            return await self._verify(expected, left())

    async def read_version(self, *, timeout: float) -> str | None:
        if self._commands.version is None:
            return None
        command = expand(self._commands.version, board=self._commands.board)
        async with deadline(self._what, timeout) as left:
            result = await self._runner.run(command, timeout=left())
        return result.stdout.strip() or None

    async def _verify(self, expected: ImageDigest, timeout: float) -> bool:
        if self._commands.verify is None:
            if self._written is None:
                raise DeviceError(f"{self._what}: no verify command, and no image written to compare with")
            return self._written[1] == expected
        if "{image}" in self._commands.verify and self._written is None:
            raise DeviceError(f"{self._what}: the verify command needs {{image}}, and no image was written")
        command = expand(
            self._commands.verify,
            image=str(self._written[0]) if self._written else "",
            board=self._commands.board,
            sha256=expected.sha256,
            size=expected.size,
        )
        result = await self._runner.run(command, timeout=timeout, check=False)
        if result.exit_status in (0, 1):
            return result.exit_status == 0
        result.checked(command, self._runner.where)
        return False
