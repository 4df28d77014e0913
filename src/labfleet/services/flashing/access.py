"""A board's flash driver, power driver and console, made from its stored wiring: flash jobs' seam to devices.

``services/flashing/service.py`` asks a ``FlashHardware`` for them; ``FlashAccess`` is the real one
(a ``power.access.DeviceAccess`` whose SSH pool also reaches flash hosts, with SFTP to stage
images there), and tests give fakes of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labfleet.db.models import Board
from labfleet.hw.commands import CommandRunner
from labfleet.hw.flash import FileTransfer, FlashDeps, FlashDriver, FlashProtocol, build_flash
from labfleet.hw.ssh import SshRunner
from labfleet.secretbox import SecretBox
from labfleet.services.inventory.wiring import flash_drivers
from labfleet.services.power import wiring as reach
from labfleet.services.power.access import DeviceAccess, Hardware


@dataclass(frozen=True, slots=True)
class FlashWiring:
    """What reaching a board's flash station takes, copied off its row."""

    board_id: int
    name: str
    flash_driver: str | None
    flash_params: Mapping[str, Any] = field(default_factory=dict)
    flash_secret: str | None = None

    @classmethod
    def of(cls, board: Board) -> FlashWiring:
        return reach.copied_off(cls, board)


class FlashHardware(Hardware, Protocol):
    """Makes the flash driver of a board, and its power driver and console as ``Hardware`` does."""

    def flash(self, wiring: FlashWiring) -> FlashProtocol:
        """The board's flash driver; ``Conflict`` when its wiring cannot make one."""
        ...


def _transfer(runner: SshRunner) -> FileTransfer:
    async def put(local: Path, remote: str, *, timeout: float) -> str:
        return await runner.put(local=local, remote=remote, timeout=timeout)

    return put


class FlashAccess(DeviceAccess):
    """The real ``FlashHardware``: ``DeviceAccess`` for power and consoles, and flash drivers on
    the same SSH pool; ``async with`` it."""

    def __init__(
        self,
        secrets: SecretBox,
        *,
        drivers: Mapping[str, FlashDriver] | None = None,
        local: CommandRunner | None = None,
    ) -> None:
        super().__init__(secrets, local=local)
        self._flash_drivers = drivers

    def flash(self, wiring: FlashWiring) -> FlashProtocol:
        if wiring.flash_driver is None:
            raise reach.unconfigured(wiring.name, "flash station", field="flash")
        with reach.usable_wiring(wiring.name, "flash", wiring.flash_driver):
            secret = reach.open_secret(self._secrets, wiring.flash_secret)
            params: dict[str, Any] = {**wiring.flash_params, "board": wiring.name}
            runner = reach.controller_runner(self._pool, params, secret)
            # Site commands without a host run here, on the labfleet host.
            deps = (
                FlashDeps(runner=self._local)
                if runner is None
                else FlashDeps(runner=runner, transfer=_transfer(runner))
            )
            drivers = self._flash_drivers if self._flash_drivers is not None else flash_drivers()
            return build_flash(wiring.flash_driver, params, deps, drivers=drivers)
