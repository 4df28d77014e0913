"""Power through pdudaemon's HTTP listener, which drives dozens of PDU models.

pdudaemon answers ``GET /power/control/{on,off,reboot}?hostname=<pdu>&port=<outlet>``
(``&delay=<seconds>`` between off and on for a reboot) with 200 once the PDU has done
it, 500 when the PDU is unknown or the job failed after pdudaemon's own retries.
pdudaemon cannot report an outlet's state, so ``state`` is unknown unless the driver is
given a probe that can tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from labfleet.errors import Invalid
from labfleet.hw.power.protocol import Outlet, PowerState, StateProbe
from labfleet.hw.translate import http_errors


@dataclass(frozen=True, slots=True, kw_only=True)
class PduDaemonOutlet:
    url: str
    """pdudaemon's HTTP listener, e.g. ``http://pdu-host:16421``."""
    pdu: str
    """The PDU's name in pdudaemon's configuration."""
    outlet: int

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise Invalid("pdudaemon's url must start with http:// or https://", field="url")
        if self.outlet < 0:
            raise Invalid("an outlet number is 0 or more", field="outlet")


class PduDaemonPower:
    """One outlet of a PDU that pdudaemon drives; ``client`` is shared by every outlet."""

    def __init__(
        self, outlet: PduDaemonOutlet, client: httpx.AsyncClient, *, probe: StateProbe | None = None
    ) -> None:
        self._pdu = outlet.pdu
        self._port = str(outlet.outlet)
        self._client = client
        self._probe = probe
        self._base = outlet.url.rstrip("/")
        self._outlet = Outlet(
            f"pdudaemon {self._base} {outlet.pdu}",
            self._port,
            f"pdudaemon {self._base}: {self._pdu} outlet {self._port}",
        )

    async def on(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._request("on", left()))

    async def off(self, *, timeout: float) -> None:
        await self._outlet.exclusive(timeout, lambda left: self._request("off", left()))

    async def cycle(self, delay: float = 2.0, *, timeout: float) -> None:
        # pdudaemon takes whole seconds; a cycle is never made shorter than asked.
        seconds = max(0, math.ceil(delay))
        await self._outlet.exclusive(timeout, lambda left: self._request("reboot", left(), seconds))

    async def state(self, *, timeout: float) -> PowerState:
        if self._probe is None:
            return PowerState.UNKNOWN
        probe = self._probe
        return await self._outlet.exclusive(timeout, lambda left: probe(timeout=left()))

    async def _request(self, action: str, timeout: float, delay: int | None = None) -> None:
        params = {"hostname": self._pdu, "port": self._port}
        if delay is not None:
            params["delay"] = str(delay)
        with http_errors(self._outlet.what):
            response = await self._client.get(
                f"{self._base}/power/control/{action}", params=params, timeout=timeout
            )
            response.raise_for_status()
