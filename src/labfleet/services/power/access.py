"""A board's power driver and console, made from its stored wiring: power actions' seam to devices.

``services/power/service.py`` asks a ``Hardware`` for them; ``DeviceAccess`` is the real one (an
HTTP client for pdudaemon, an SSH pool for controllers reached over SSH, the local machine
for site commands, pyserial for consoles), and unit tests give fakes of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

import httpx

from labfleet.db.models import Board
from labfleet.hw.commands import CommandRunner, LocalRunner
from labfleet.hw.console import ConsolePort, ConsoleProtocol, SerialConsole
from labfleet.hw.power import PowerDeps, PowerDriver, PowerProtocol, build_power
from labfleet.hw.ssh import SshPool
from labfleet.secretbox import SecretBox
from labfleet.services.inventory.wiring import power_drivers
from labfleet.services.power.wiring import (
    controller_runner,
    copied_off,
    open_secret,
    unconfigured,
    usable_wiring,
)


@dataclass(frozen=True, slots=True)
class BoardWiring:
    """What reaching a board's power and console takes, copied off its row."""

    board_id: int
    name: str
    console_url: str | None
    power_driver: str | None
    power_params: Mapping[str, Any] = field(default_factory=dict)
    power_secret: str | None = None

    @classmethod
    def of(cls, board: Board) -> BoardWiring:
        return copied_off(cls, board)


class Hardware(Protocol):
    """Makes the power driver and the console of a board."""

    def power(self, wiring: BoardWiring) -> PowerProtocol:
        """The board's power driver; ``Conflict`` when its wiring cannot make one."""
        ...

    def console(self, wiring: BoardWiring) -> ConsoleProtocol | None:
        """The board's console, not yet open; None when it has none."""
        ...


class DeviceAccess:
    """The real ``Hardware``; ``async with`` it: it owns the HTTP client and SSH pool its drivers use."""

    def __init__(
        self,
        secrets: SecretBox,
        *,
        drivers: Mapping[str, PowerDriver] | None = None,
        local: CommandRunner | None = None,
    ) -> None:
        self._secrets = secrets
        self._drivers = drivers
        self._local = local or LocalRunner()
        self._http: dict[tuple[str, str] | None, httpx.AsyncClient] = {}
        self._pool = SshPool()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        clients, self._http = list(self._http.values()), {}
        for client in clients:
            await client.aclose()
        await self._pool.close()

    def power(self, wiring: BoardWiring) -> PowerProtocol:
        if wiring.power_driver is None:
            raise unconfigured(wiring.name, "power control", field="power")
        with usable_wiring(wiring.name, "power", wiring.power_driver):
            secret = open_secret(self._secrets, wiring.power_secret)
            deps = PowerDeps(runner=self._runner(wiring.power_params, secret), http=self._client(secret))
            drivers = self._drivers if self._drivers is not None else power_drivers()
            return build_power(wiring.power_driver, wiring.power_params, deps, drivers=drivers)

    def console(self, wiring: BoardWiring) -> ConsoleProtocol | None:
        if wiring.console_url is None:
            return None
        return SerialConsole(ConsolePort(url=wiring.console_url), name=f"board {wiring.name} console")

    def _runner(self, params: Mapping[str, Any], secret: Mapping[str, Any]) -> CommandRunner:
        # Drivers that run a tool on a controller name its host (usb-hub, gpio-relay); site
        # commands without one run here, on the labfleet host.
        runner = controller_runner(self._pool, params, secret)
        return self._local if runner is None else runner

    def _client(self, secret: Mapping[str, Any]) -> httpx.AsyncClient:
        # pdudaemon itself has no authentication; one behind a proxy with basic auth gets it.
        user, password = secret.get("username"), secret.get("password")
        key = (str(user), str(password)) if user and password else None
        client = self._http.get(key)
        if client is None:
            client = httpx.AsyncClient(auth=key) if key else httpx.AsyncClient()
            self._http[key] = client
        return client
