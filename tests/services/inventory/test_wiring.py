"""A board's wiring checked against the drivers installed: built-in ones and a site's, by their resources.

Validates: 6.3, 8.1, 18.1
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import TypeAdapter

from labfleet.errors import Invalid
from labfleet.hw import flash, power
from labfleet.hw.fakes import FakeFlash, FakePower
from labfleet.schemas.wiring import FlashConfig, PowerConfig
from labfleet.services.inventory.wiring import flash_params, power_params


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    channel: int
    bank: str = "a"
    lines: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.channel < 1:
            raise Invalid("a relay channel is 1 or more", field="channel")


@dataclass(frozen=True, slots=True, kw_only=True)
class Programmer:
    port: str
    board: str = ""
    """The board's name, which flash access gives every flash driver."""


POWER: Mapping[str, power.PowerDriver] = {
    **power.BUILTIN,
    "relay": power.PowerDriver("relay", Relay, lambda relay, deps: FakePower()),
}
FLASH: Mapping[str, flash.FlashDriver] = {
    **flash.BUILTIN,
    "isp": flash.FlashDriver("isp", Programmer, lambda programmer, deps: FakeFlash()),
}
SECRET = {"username": "admin", "password": "relay-secret-pw"}
RELAY = "power driver relay: "


def wired_power(**sent: Any) -> dict[str, Any]:
    return power_params(TypeAdapter(PowerConfig).validate_python(sent), drivers=POWER)


def refused(**sent: Any) -> Invalid:
    with pytest.raises(Invalid) as info:
        wired_power(secret=SECRET, **sent)
    assert "relay-secret-pw" not in info.value.message
    return info.value


def test_a_site_drivers_parameters_are_checked_and_stored_as_its_resource_has_them() -> None:
    params = wired_power(driver="relay", channel="3", lines=[1, 2], host="relay-host.lab", secret=SECRET)
    # Numbers given as text taken as numbers, defaults filled in, where it runs kept, the secret not.
    assert params == {"host": "relay-host.lab", "channel": 3, "bank": "a", "lines": [1, 2]}
    assert power.build_power("relay", params, power.PowerDeps(), drivers=POWER)
    assert wired_power(driver="relay", channel=1, ssh_port=2222) == {
        "ssh_port": 2222,
        "channel": 1,
        "bank": "a",
        "lines": [],
    }


@pytest.mark.parametrize(
    ("sent", "field", "reason"),
    [
        ({"driver": "snmp"}, "power.driver", "no power driver called 'snmp'; known: command, gpio-relay, "),
        ({"driver": "relay"}, "power.channel", RELAY + "channel is required"),
        (
            {"driver": "relay", "channel": "three"},
            "power.channel",
            RELAY + "channel: Input should",
        ),
        (
            {"driver": "relay", "channel": 1, "lines": "1,2"},
            "power.lines",
            RELAY + "lines: Input should",
        ),
        (
            {"driver": "relay", "channel": 0},
            "power.channel",
            RELAY + "a relay channel is 1 or more",
        ),
        (
            {"driver": "relay", "channel": 1, "colour": "red"},
            "power.colour",
            "power driver relay has no parameter 'colour'; its parameters: bank, channel, lines",
        ),
        # A built-in's model takes any chip name; the driver's resource does not.
        (
            {"driver": "gpio-relay", "host": "pi", "chip": "chip 0", "line": 4},
            "power.chip",
            "power driver gpio",
        ),
    ],
)
def test_a_refused_wiring_names_the_parameter_and_why(sent: dict[str, Any], field: str, reason: str) -> None:
    error = refused(**sent)
    assert error.field == field
    assert error.message.startswith(reason), error.message


def test_the_unknown_driver_error_names_the_site_drivers_too() -> None:
    assert "relay" in refused(driver="snmp").message.split("known: ")[1].split(", ")


def test_a_built_in_wiring_is_stored_as_its_model_has_it() -> None:
    sent = {"driver": "usb-hub", "host": "hub.lab", "location": "1-1.4", "port": "2"}
    assert wired_power(**sent) == {
        "host": "hub.lab",
        "ssh_port": 22,
        "ssh_user": "root",
        "location": "1-1.4",
        "port": 2,
    }


def test_flash_drivers_are_given_the_boards_name_which_is_neither_sent_nor_stored() -> None:
    def wired(**sent: Any) -> dict[str, Any]:
        return flash_params(TypeAdapter(FlashConfig).validate_python(sent), board="rpi-7", drivers=FLASH)

    assert wired(driver="isp", port="/dev/ttyACM0") == {"port": "/dev/ttyACM0"}
    assert wired(driver="command", write="flash {board} {image}") == {
        "write": "flash {board} {image}",
        "verify": None,
        "version": None,
    }
    with pytest.raises(Invalid) as info:
        wired(driver="isp", port="/dev/ttyACM0", board="other")
    assert info.value.field == "flash.board" and "the board's own" in info.value.message
    with pytest.raises(Invalid) as info:
        wired(driver="isp")
    assert (info.value.field, info.value.message) == ("flash.port", "flash driver isp: port is required")
    with pytest.raises(Invalid) as info:
        wired(driver="uuu")
    assert info.value.field == "flash.driver" and "isp" in info.value.message
