"""How a board is wired: console, power control and flash station, one model per built-in driver.

A wiring's model is chosen by its ``driver``. A built-in driver's parameters are
validated by its own model, so a missing or wrong one is named precisely
(``power.outlet``, ``flash.device``). Any other name is a site's driver (an entry point):
``SitePower`` / ``SiteFlash`` carry its parameters as they were sent, and the service
that stores the wiring, which knows the drivers installed, checks them against the
driver's own (``services/inventory/wiring.py``). A built-in driver without a model here
is accepted the same way.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, JsonValue, StringConstraints
from pydantic.config import JsonDict

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


DriverName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class SiteDriver(_Wiring):
    """A driver a site installed: its name, its own parameters as further fields, checked
    against the driver's when the wiring is stored, and where it runs its tools."""

    model_config = ConfigDict(extra="allow")

    driver: DriverName
    host: Address | None = Field(
        default=None,
        description="A controller host, reached over SSH, where the driver runs its commands; "
        "without one they run on the labfleet host.",
    )
    ssh_port: Port | None = Field(default=None, description="22 unless given.")
    ssh_user: UserName | None = Field(default=None, description="root unless given.")


def _names(model: type[_Wiring]) -> tuple[str, ...]:
    return get_args(model.model_fields["driver"].annotation)


def _site_driver(group: str, models: UnionType) -> Any:
    """The ``driver`` field of a site's wiring: an entry point of ``group``, none of the built-ins."""
    names: list[JsonValue] = [name for model in get_args(models) for name in sorted(_names(model))]
    not_built_in: JsonDict = {"not": {"enum": names}}
    description = f"The name of the driver's entry point in {group}."
    return Field(description=description, json_schema_extra=not_built_in)


def _by_driver(models: UnionType, site: type[SiteDriver]) -> BeforeValidator:
    """Validates a wiring with the model of its driver: a built-in's own, else ``site``.

    Choosing the model here rather than by a tagged union keeps the driver's name out of
    the errors' paths: a missing outlet is ``power.outlet``, where it was left out.
    """
    chosen: dict[str, type[_Wiring]] = {name: model for model in get_args(models) for name in _names(model)}

    def validate(value: Any) -> Any:
        if isinstance(value, _Wiring):
            return value
        if not isinstance(value, dict):
            raise ValueError("a wiring is an object: its driver and the driver's parameters")
        driver = value.get("driver")
        model = chosen.get(driver, site) if isinstance(driver, str) else site
        return model.model_validate(value)

    return BeforeValidator(validate)


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


_BuiltInPower = PduDaemonPower | UsbHubPower | GpioRelayPower | CommandPower


class SitePower(SiteDriver):
    """A power driver a site installed; its parameters are further fields."""

    driver: DriverName = _site_driver("labfleet.power_drivers", _BuiltInPower)


PowerConfig = Annotated[_BuiltInPower | SitePower, _by_driver(_BuiltInPower, SitePower)]


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


_BuiltInFlash = BlockDeviceFlash | FastbootFlash | DfuFlash | OpenOcdFlash | CommandFlash


class SiteFlash(SiteDriver):
    """A flash driver a site installed; its parameters are further fields."""

    driver: DriverName = _site_driver("labfleet.flash_drivers", _BuiltInFlash)


FlashConfig = Annotated[_BuiltInFlash | SiteFlash, _by_driver(_BuiltInFlash, SiteFlash)]
