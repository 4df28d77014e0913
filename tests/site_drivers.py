"""A site's own drivers, as a package of its own would publish them.

``tests/api/test_site_drivers.py`` declares them through a distribution's entry points: a
relay board whose channels are switched by writing their state files with the command
runner labfleet gives the driver (the labfleet host's, with no controller named), and a
programmer that copies an image to a target file, noting the board it was for.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

from labfleet.errors import DeviceError, Invalid
from labfleet.hw.commands import CommandRunner, quote
from labfleet.hw.flash import FlashDriver, ImageDigest, Phase, Progress
from labfleet.hw.flash.protocol import digest_of, report
from labfleet.hw.power import PowerDriver, PowerState
from labfleet.hw.power.protocol import Outlet, off_then_on, parse_state


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayChannel:
    state_dir: str
    """Where the relay board keeps a file per channel: ``channel-<n>``, ``on`` or ``off``."""
    channel: int

    def __post_init__(self) -> None:
        if self.channel < 1:
            raise Invalid("a relay channel is 1 or more", field="channel")


class RelayPower:
    def __init__(self, relay: RelayChannel, runner: CommandRunner | None) -> None:
        if runner is None:
            raise Invalid("the relay board needs a command runner")
        self._runner = runner
        self._file = quote(str(Path(relay.state_dir) / f"channel-{relay.channel}"))
        channel = str(relay.channel)
        self._outlet = Outlet(f"relay {relay.state_dir}", channel, f"relay channel {channel}")

    async def on(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._switch("on", left()))

    async def off(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._switch("off", left()))

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        await self._outlet.exclusive(
            timeout,
            lambda left: off_then_on(
                lambda: self._switch("off", left()), lambda: self._switch("on", left()), delay
            ),
        )

    async def state(self, *, timeout: float) -> PowerState:
        result = await self._runner.run(f"cat {self._file} 2>/dev/null || echo unknown", timeout=timeout)
        return parse_state(result.stdout, self._outlet.what)

    async def _switch(self, state: str, timeout: float) -> None:
        await self._runner.run(f"echo {state} > {self._file}", timeout=timeout)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageTarget:
    target: str
    """The file the image is copied to."""
    board: str = ""
    """The board's name, which labfleet gives every flash driver."""


class CopyFlash:
    def __init__(self, target: ImageTarget) -> None:
        self._target = Path(target.target)
        self._board = target.board

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        digest = await digest_of(image)
        await asyncio.to_thread(shutil.copyfile, image, self._target)
        self._target.with_name(self._target.name + ".board").write_text(self._board)
        report(progress, Phase.WRITE, digest.size, digest.size)
        if not await self.verify(digest, timeout=timeout):
            raise DeviceError(f"{self._target}: the copy does not match {image.name}")
        report(progress, Phase.DONE, digest.size, digest.size)
        return digest

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        return self._target.exists() and await digest_of(self._target) == expected

    async def read_version(self, *, timeout: float) -> str | None:
        return None


RELAY = PowerDriver("file-relay", RelayChannel, lambda relay, deps: RelayPower(relay, deps.runner))
ISP = FlashDriver("file-isp", ImageTarget, lambda target, deps: CopyFlash(target))
