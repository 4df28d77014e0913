"""What power and flash drivers share: a driver's parameters checked against its resource's fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from labfleet.errors import Invalid
from labfleet.hw.fakes import FakePower, FakeRunner
from labfleet.hw.power import PowerDeps, PowerDriver, build_power, with_site_drivers
from labfleet.hw.registry import parameter_names, parameters, resource_from


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    channel: int
    label: str = "relay"
    lines: tuple[int, ...] = ()
    spool: Path | None = None
    counted: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.channel < 1:
            raise Invalid("a relay channel is 1 or more", field="channel")


@dataclass(frozen=True)
class Picky:
    level: int

    def __post_init__(self) -> None:
        if self.level > 9:
            raise ValueError("a level is at most 9")


class NotADataclass:
    pass


@dataclass(frozen=True)
class Unresolvable:
    where: Nowhere  # noqa: F821


RELAY = PowerDriver("relay", Relay, lambda relay, deps: FakePower())
UNDATACLASSED = PowerDriver("plain", NotADataclass, lambda relay, deps: FakePower())
UNRESOLVABLE = PowerDriver("unresolvable", Unresolvable, lambda relay, deps: FakePower())


def test_parameters_are_checked_against_the_fields_types() -> None:
    assert resource_from(Relay, {"channel": 2, "lines": [1, 2], "host": "controller"}) == Relay(
        channel=2, lines=(1, 2)
    )
    # Numbers given as text (the command line sends text) are taken as the numbers.
    assert resource_from(Relay, {"channel": "3", "spool": "/var/spool"}) == Relay(
        channel=3, spool=Path("/var/spool")
    )
    cases: list[tuple[dict[str, object], str, str]] = [
        ({}, "channel", "channel is required"),
        ({"channel": "three"}, "channel", "channel: Input should be a valid integer"),
        ({"channel": 1, "label": 7}, "label", "label: Input should be a valid string"),
        ({"channel": 1, "lines": [1, "x"]}, "lines.1", "lines.1: Input should be a valid integer"),
        ({"channel": 0}, "channel", "a relay channel is 1 or more"),
    ]
    for params, field_name, message in cases:
        with pytest.raises(Invalid) as refused:
            resource_from(Relay, params)
        assert (refused.value.field, refused.value.message.split(",")[0]) == (field_name, message)
    with pytest.raises(Invalid) as refused:
        resource_from(Picky, {"level": 10})
    assert (refused.value.field, refused.value.message) == (None, "a level is at most 9")


def test_parameters_are_stored_as_json_and_taken_back() -> None:
    relay = Relay(channel=4, lines=(3, 5), spool=Path("/srv/spool"))
    stored = parameters(relay)
    assert stored == {"channel": 4, "label": "relay", "lines": [3, 5], "spool": "/srv/spool"}
    assert resource_from(Relay, stored) == relay
    assert parameter_names(Relay) == {"channel", "label", "lines", "spool"}


def test_a_built_in_driver_refuses_a_parameter_of_the_wrong_type() -> None:
    # Validates: 18.1
    deps = PowerDeps(runner=FakeRunner())
    with pytest.raises(Invalid) as refused:
        build_power("usb-hub", {"host": "hub", "location": "1-1", "port": "second"}, deps)
    assert refused.value.field == "port"
    with pytest.raises(Invalid) as refused:
        build_power("gpio-relay", {"host": "pi", "chip": "my chip", "line": 17}, deps)
    assert refused.value.field == "chip"
    assert build_power("usb-hub", {"host": "hub", "location": "1-1", "port": "2"}, deps)


def test_a_site_driver_whose_parameters_cannot_be_checked_is_refused_when_loaded() -> None:
    # Validates: 18.1
    def entry(name: str, attribute: str) -> EntryPoint:
        return EntryPoint(name, f"tests.hw.test_registry:{attribute}", "labfleet.power_drivers")

    assert "relay" in with_site_drivers([entry("relay", "RELAY")])
    with pytest.raises(Invalid, match="the resource of plain is not a dataclass"):
        with_site_drivers([entry("plain", "UNDATACLASSED")])
    with pytest.raises(Invalid, match="the parameters of Unresolvable cannot be checked"):
        with_site_drivers([entry("unresolvable", "UNRESOLVABLE")])
