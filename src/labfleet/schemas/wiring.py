"""How a board is wired: console, power control and flash station, one model per driver.

Each driver's parameters are validated by its own model, chosen by ``driver``, so a
missing or wrong parameter is named precisely (``power.outlet``, ``flash.device``).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints

from labfleet.schemas.common import Address, Port, Secret, Strict
from labfleet.schemas.ssh import UserName

Command = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


def _console_url(value: str) -> str:
    if value.startswith("/dev/"):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("socket", "rfc2217"):
        raise ValueError("use a device path (/dev/ttyUSB0) or a socket:// or rfc2217:// URL")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(f"a {parts.scheme}:// URL needs a host and a port, e.g. {parts.scheme}://lab-1:7001")
    return value


ConsoleUrl = Annotated[str, StringConstraints(min_length=1, max_length=1024), AfterValidator(_console_url)]


class DeviceSecret(Strict):
    """Credentials of a power controller or flash station; write-only."""

    username: Annotated[str, StringConstraints(max_length=128)] | None = None
    password: Secret | None = None
    private_key: Secret | None = None


class _Wiring(Strict):
    secret: DeviceSecret | None = Field(default=None, description="Write-only.")


class _OverSsh(_Wiring):
    """A driver that runs a tool on a controller host over SSH."""

    host: Address
    ssh_port: Port = 22
    ssh_user: UserName = "root"


class PduDaemonPower(_Wiring):
    driver: Literal["pdudaemon"]
    url: Annotated[str, StringConstraints(pattern=r"^https?://")] = Field(
        description="pdudaemon's HTTP listener, e.g. http://pdu-host:16421"
    )
    pdu: Annotated[str, StringConstraints(min_length=1, max_length=255)] = Field(
        description="The PDU's name in pdudaemon's configuration."
    )
    outlet: int = Field(ge=0, le=4096)


class UsbHubPower(_OverSsh):
    driver: Literal["usb-hub"]
    location: Annotated[str, StringConstraints(pattern=r"^[0-9][0-9.-]*$")] = Field(
        description="uhubctl hub location, e.g. 1-1.4"
    )
    port: int = Field(ge=1, le=32)


class GpioRelayPower(_OverSsh):
    driver: Literal["gpio-relay"]
    chip: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "gpiochip0"
    line: int = Field(ge=0, le=1023)
    active_low: bool = False
    sense_line: int | None = Field(
        default=None,
        ge=0,
        le=1023,
        description="An input line wired to read the relay back; without it the state is unknown.",
    )


class CommandPower(_Wiring):
    driver: Literal["command"]
    on: Command
    off: Command
    state: Command | None = Field(default=None, description="Prints 'on' or 'off'.")


PowerConfig = Annotated[
    PduDaemonPower | UsbHubPower | GpioRelayPower | CommandPower, Field(discriminator="driver")
]


class BlockDeviceFlash(_OverSsh):
    driver: Literal["bmaptool", "dd"]
    device: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9/_.-]+$")] = Field(
        description="Block device (an SD mux) or image file on the flash host."
    )


class FastbootFlash(_OverSsh):
    driver: Literal["fastboot"]
    serial: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    partition: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "boot"


class DfuFlash(_OverSsh):
    driver: Literal["dfu-util"]
    device: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")] = Field(
        description="USB vendor:product"
    )
    alt: int = Field(default=0, ge=0, le=255)


class OpenOcdFlash(_OverSsh):
    driver: Literal["openocd"]
    config: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        description="openocd -f argument(s), e.g. board/stm32f4discovery.cfg"
    )
    address: Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]+$")] = "0x08000000"


class CommandFlash(_Wiring):
    driver: Literal["command"]
    write: Command = Field(description="Writes {image}; may use {board}.")
    verify: Command | None = None
    version: Command | None = Field(default=None, description="Prints the running firmware version.")


FlashConfig = Annotated[
    BlockDeviceFlash | FastbootFlash | DfuFlash | OpenOcdFlash | CommandFlash,
    Field(discriminator="driver"),
]
