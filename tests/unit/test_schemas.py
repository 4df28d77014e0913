"""Input validation: every field names itself and its reason."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from labfleet.errors import Invalid
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.schemas.hosts import HostCreate
from labfleet.schemas.query import LabelFilter, ListQuery
from labfleet.schemas.wiring import CommandFlash, SiteFlash, SitePower
from tests.factories import board, build_server, host


def error_fields(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("aarch64", "arm64"),
        ("AMD64", "x86_64"),
        ("armhf", "arm"),
        ("riscv64", "riscv64"),
        ("ppc64el", "ppc64le"),
    ],
)
def test_architecture_aliases_are_normalized(given: str, expected: str) -> None:
    assert BoardCreate.model_validate(board(architecture=given)).architecture.value == expected


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        BoardCreate.model_validate(board(architecture="z80"))
    assert error_fields(info.value) == ["architecture"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("/dev/ttyUSB0", True),
        ("socket://console-1:7001", True),
        ("rfc2217://127.0.0.1:7002?ign_set_control", True),
        ("socket://console-1", False),
        ("telnet://console-1:23", False),
        ("ttyUSB0", False),
    ],
)
def test_console_urls(url: str, ok: bool) -> None:
    if ok:
        assert BoardCreate.model_validate(board(console_url=url)).console_url == url
    else:
        with pytest.raises(ValidationError) as info:
            BoardCreate.model_validate(board(console_url=url))
        assert error_fields(info.value) == ["console_url"]


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("qemu:///system", True),
        ("qemu+ssh://root@kvm/system", True),
        ("test:///default", True),
        ("qemu+ssh://root@kvm/", False),
        ("xen:///system", False),
    ],
)
def test_libvirt_uris(uri: str, ok: bool) -> None:
    if ok:
        assert HostCreate.model_validate(host(libvirt_uri=uri)).libvirt_uri == uri
    else:
        with pytest.raises(ValidationError):
            HostCreate.model_validate(host(libvirt_uri=uri))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hostname": "not a host"}, "hostname"),
        ({"address": "300.1.1.1.1"}, "address"),
        ({"max_concurrent_builds": 0}, "max_concurrent_builds"),
        ({"labels": {"Bad Key": "x"}}, "labels"),
        ({"labels": {"ok": "line\nbreak"}}, "labels"),
        ({"ssh": {"username": "root", "private_key": "ssh-rsa AAAA"}}, "ssh.private_key"),
        ({"ssh": {"username": "-rf"}}, "ssh.username"),
        ({"extra": 1}, "extra"),
    ],
)
def test_build_server_fields_name_themselves(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        BuildServerCreate.model_validate(build_server(**change))
    assert error_fields(info.value) == [field]


def test_addresses_are_normalized() -> None:
    data = BuildServerCreate.model_validate(
        build_server(hostname="Build-1.LAB.", address="10.0.0.01".replace("01", "1"))
    )
    assert data.hostname == "build-1.lab"


@pytest.mark.parametrize(
    ("power", "field"),
    [
        ({"driver": "pdudaemon", "url": "http://p:16421", "pdu": "p"}, "power.outlet"),
        ({"driver": "usb-hub", "host": "hub.lab", "location": "1-1", "port": 0}, "power.port"),
        ({"driver": "command", "on": "relay on", "off": "relay off", "colour": "red"}, "power.colour"),
        ({"url": "http://p:16421", "pdu": "p", "outlet": 1}, "power.driver"),
        ({"driver": 7}, "power.driver"),
        ({"driver": "smoke-signals", "host": "not a host"}, "power.host"),
        ("pdudaemon", "power"),
    ],
)
def test_power_wiring_is_checked_per_driver(power: Any, field: str) -> None:
    # The path names the field as it was sent, without the driver's name in it.
    with pytest.raises(ValidationError) as info:
        BoardCreate.model_validate(board(power=power))
    assert error_fields(info.value) == [field]


def test_flash_wiring_is_checked_per_driver() -> None:
    with pytest.raises(ValidationError) as info:
        BoardCreate.model_validate(board(flash={"driver": "dd", "host": "mux-1", "device": "sdb"}))
    assert error_fields(info.value) == ["flash.device"]


def test_any_other_driver_is_a_sites_with_its_parameters_as_sent() -> None:
    # Whether it is installed, and what its parameters must be, is for the service to say.
    power = {"driver": "snmp-pdu", "community": "lab", "outlet": "3", "host": "pdu-1.lab", "ssh_port": "2222"}
    wired = BoardCreate.model_validate(board(power=power)).power
    assert isinstance(wired, SitePower)
    assert (wired.driver, wired.host, wired.ssh_port, wired.ssh_user) == ("snmp-pdu", "pdu-1.lab", 2222, None)
    assert wired.model_extra == {"community": "lab", "outlet": "3"}
    flash = BoardCreate.model_validate(board(flash={"driver": "uuu", "usb": "1:2"})).flash
    assert isinstance(flash, SiteFlash) and flash.model_extra == {"usb": "1:2"}
    # A built-in's name always gets the built-in's own model.
    built_in = BoardCreate.model_validate(board(flash={"driver": "command", "write": "w {image}"})).flash
    assert isinstance(built_in, CommandFlash)


def test_a_board_needs_a_way_in() -> None:
    with pytest.raises(ValidationError):
        BoardCreate.model_validate(board(console_url=None))


def test_peripherals_are_unique() -> None:
    with pytest.raises(ValidationError) as info:
        BoardCreate.model_validate(board(peripherals=["sd-mux", "sd-mux"]))
    assert error_fields(info.value) == ["peripherals"]


def test_label_filters() -> None:
    assert LabelFilter.parse("rack=r1") == LabelFilter("rack", "r1")
    assert LabelFilter.parse("rack") == LabelFilter("rack", None)
    assert LabelFilter.parse("k=") == LabelFilter("k", "")
    with pytest.raises(Invalid) as info:
        LabelFilter.parse("=x")
    assert info.value.field == "label"


def test_sort_names_the_choices() -> None:
    assert ListQuery(sort="-name").sort_key(frozenset({"name"})) == ("name", True)
    with pytest.raises(Invalid) as info:
        ListQuery(sort="secret").sort_key(frozenset({"name", "id"}))
    assert info.value.field == "sort"
    assert "id, name" in info.value.message


def test_descriptions_keep_newlines_but_no_other_control_characters() -> None:
    assert BuildServerCreate.model_validate(build_server(description="two\nlines\tok")).description
    with pytest.raises(ValidationError) as info:
        BuildServerCreate.model_validate(build_server(description="nul\x00byte"))
    assert error_fields(info.value) == ["description"]
