"""A board's flash driver, power driver and console, made from its stored wiring: flash jobs' seam to devices.

``services/flashing/service.py`` asks a ``FlashHardware`` for them; ``FlashAccess`` is the real one
(an SSH pool for flash hosts, with SFTP to stage images there; power and console as
``power_access.DeviceAccess`` makes them), and tests give fakes of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from labfleet.db.models import Board
from labfleet.hw.commands import CommandRunner, LocalRunner
from labfleet.hw.console import ConsoleProtocol
from labfleet.hw.flash import FileTransfer, FlashDeps, FlashDriver, FlashProtocol, build_flash
from labfleet.hw.power import PowerProtocol
from labfleet.hw.ssh import SshPool, SshRunner
from labfleet.secretbox import SecretBox
from labfleet.services.inventory.wiring import flash_drivers
from labfleet.services.power.access import BoardWiring, DeviceAccess
from labfleet.services.power.wiring import controller_runner, open_secret, unconfigured, usable_wiring


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
        return cls(
            board_id=board.id,
            name=board.name,
            flash_driver=board.flash_driver,
            flash_params=dict(board.flash_params or {}),
            flash_secret=board.flash_secret,
        )


class FlashHardware(Protocol):
    """Makes the flash driver, the power driver and the console of a board."""

    def flash(self, wiring: FlashWiring) -> FlashProtocol:
        """The board's flash driver; ``Conflict`` when its wiring cannot make one."""
        ...

    def power(self, wiring: BoardWiring) -> PowerProtocol:
        """The board's power driver; ``Conflict`` when it has none or its wiring cannot make one."""
        ...

    def console(self, wiring: BoardWiring) -> ConsoleProtocol | None:
        """The board's console, not yet open; None when it has none."""
        ...


def _transfer(runner: SshRunner) -> FileTransfer:
    async def put(local: Path, remote: str, *, timeout: float) -> str:
        return await runner.put(local=local, remote=remote, timeout=timeout)

    return put


class FlashAccess:
    """The real ``FlashHardware``; ``async with`` it: it owns the SSH pool and the power access."""

    def __init__(
        self,
        secrets: SecretBox,
        *,
        drivers: Mapping[str, FlashDriver] | None = None,
        local: CommandRunner | None = None,
    ) -> None:
        self._secrets = secrets
        self._drivers = drivers
        self._local = local or LocalRunner()
        self._pool = SshPool()
        self._power = DeviceAccess(secrets, local=self._local)

    async def __aenter__(self) -> FlashAccess:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._pool.close()
        finally:
            await self._power.close()

    def flash(self, wiring: FlashWiring) -> FlashProtocol:
        if wiring.flash_driver is None:
            raise unconfigured(wiring.name, "flash station", field="flash")
        with usable_wiring(wiring.name, "flash", wiring.flash_driver):
            secret = open_secret(self._secrets, wiring.flash_secret)
            params: dict[str, Any] = {**wiring.flash_params, "board": wiring.name}
            runner = controller_runner(self._pool, params, secret)
            # Site commands without a host run here, on the labfleet host.
            deps = (
                FlashDeps(runner=self._local)
                if runner is None
                else FlashDeps(runner=runner, transfer=_transfer(runner))
            )
            drivers = self._drivers if self._drivers is not None else flash_drivers()
            return build_flash(wiring.flash_driver, params, deps, drivers=drivers)

    def power(self, wiring: BoardWiring) -> PowerProtocol:
        return self._power.power(wiring)

    def console(self, wiring: BoardWiring) -> ConsoleProtocol | None:
        return self._power.console(wiring)
