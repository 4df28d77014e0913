"""The power driver registry: every built-in is built from its API wiring; site drivers are entry points."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel

from labfleet.errors import Conflict, Invalid, NotFound
from labfleet.hw.fakes import FakePower, FakeRunner
from labfleet.hw.power import (
    BUILTIN,
    PowerDeps,
    PowerDriver,
    PowerProtocol,
    PowerState,
    build_power,
    with_site_drivers,
)
from labfleet.schemas.wiring import (
    CommandPower,
    GpioRelayPower,
    PduDaemonPower,
    PowerConfig,
    SiteDriver,
    UsbHubPower,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToyRelay:
    channel: int = 0


# A site driver, as a package would publish it through an entry point.
TOY = PowerDriver("toy-relay", ToyRelay, lambda relay, deps: FakePower())

WIRING: list[tuple[str, type[BaseModel], dict[str, Any]]] = [
    (
        "pdudaemon",
        PduDaemonPower,
        {"driver": "pdudaemon", "url": "http://pdu:16421", "pdu": "p1", "outlet": 4},
    ),
    ("usb-hub", UsbHubPower, {"driver": "usb-hub", "host": "hubhost", "location": "1-1.4", "port": 2}),
    (
        "gpio-relay",
        GpioRelayPower,
        {"driver": "gpio-relay", "host": "pi", "line": 17, "active_low": True},
    ),
    ("command", CommandPower, {"driver": "command", "on": "relay 1 on", "off": "relay 1 off"}),
]
EXAMPLES = {
    name: model.model_validate(example).model_dump(exclude={"secret"}) for name, model, example in WIRING
}


def api_driver_names(config: object) -> set[str]:
    """The drivers with a wiring model of their own: the ``driver`` literals of the built-ins' models."""
    models = [model for model in get_args(get_args(config)[0]) if not issubclass(model, SiteDriver)]
    return {name for model in models for name in get_args(model.model_fields["driver"].annotation)}


def protocol_methods(protocol: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(protocol, inspect.isfunction) if not name.startswith("_")}


def test_every_wiring_model_names_a_registered_driver() -> None:
    # Validates: 18.1
    # A built-in without a model of its own would be checked as a site's driver is, by its resource.
    assert api_driver_names(PowerConfig) <= set(BUILTIN)
    assert set(EXAMPLES) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(BUILTIN))
async def test_every_registered_name_builds_a_power_driver_from_its_api_wiring(name: str) -> None:
    # Validates: 18.1
    async with httpx.AsyncClient() as http:
        power = build_power(name, EXAMPLES[name], PowerDeps(runner=FakeRunner(), http=http))
    assert isinstance(power, PowerProtocol)
    public = {member for member in dir(power) if not member.startswith("_")}
    assert public == protocol_methods(PowerProtocol)


def test_building_names_what_is_missing() -> None:
    # Validates: 8.1, 18.1
    with pytest.raises(NotFound, match="no power driver called 'snmp'"):
        build_power("snmp", {}, PowerDeps())
    with pytest.raises(Invalid) as missing:
        build_power("usb-hub", {"location": "1-1"}, PowerDeps(runner=FakeRunner()))
    assert missing.value.field == "port"
    with pytest.raises(Invalid, match="needs an HTTP client"):
        build_power("pdudaemon", EXAMPLES["pdudaemon"], PowerDeps(runner=FakeRunner()))
    with pytest.raises(Invalid, match="needs a command runner"):
        build_power("gpio-relay", EXAMPLES["gpio-relay"], PowerDeps())


def test_site_drivers_come_from_entry_points_only_when_asked() -> None:
    # Validates: 18.1
    toy = EntryPoint("toy-relay", "tests.hw.test_power_registry:TOY", "labfleet.power_drivers")
    drivers = with_site_drivers([toy])
    assert set(drivers) == set(BUILTIN) | {"toy-relay"}
    assert "toy-relay" not in BUILTIN
    assert isinstance(build_power("toy-relay", {}, PowerDeps(), drivers=drivers), FakePower)

    clash = EntryPoint("command", "tests.hw.test_power_registry:TOY", "labfleet.power_drivers")
    with pytest.raises(Invalid, match="names a driver called toy-relay"):
        with_site_drivers([clash])
    with pytest.raises(Conflict, match="already registered"):
        with_site_drivers([toy], builtin=drivers)
    not_a_driver = EntryPoint("toy-relay", "tests.hw.test_power_registry:EXAMPLES", "labfleet.power_drivers")
    with pytest.raises(Invalid, match="is not a PowerDriver"):
        with_site_drivers([not_a_driver])


def test_this_installation_declares_no_site_drivers() -> None:
    # Validates: 18.1
    assert set(with_site_drivers()) == set(BUILTIN)


async def test_the_in_package_fake_behaves_like_a_power_driver() -> None:
    # Validates: 18.1, 18.3
    power = FakePower()
    assert isinstance(power, PowerProtocol)
    await power.cycle(timeout=1)
    assert await power.state(timeout=1) is PowerState.ON
    assert power.calls == ["cycle"]
