"""The flash driver registry: every built-in is built from its API wiring; site drivers are entry points."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from labfleet.errors import Conflict, Invalid, NotFound
from labfleet.hw.fakes import FakeFlash, FakeRunner
from labfleet.hw.flash import BUILTIN, FlashDeps, FlashDriver, FlashProtocol, build_flash, with_site_drivers
from labfleet.schemas.wiring import (
    BlockDeviceFlash,
    CommandFlash,
    DfuFlash,
    FastbootFlash,
    FlashConfig,
    OpenOcdFlash,
    SiteDriver,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToyProgrammer:
    port: str = "/dev/ttyACM0"


# A site driver, as a package would publish it through an entry point.
TOY = FlashDriver("toy-isp", ToyProgrammer, lambda programmer, deps: FakeFlash())

WIRING: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (BlockDeviceFlash, {"driver": "dd", "host": "mux-1", "device": "/dev/sdb"}),
    (BlockDeviceFlash, {"driver": "bmaptool", "host": "mux-1", "device": "/dev/sdc"}),
    (FastbootFlash, {"driver": "fastboot", "host": "fb-1", "serial": "0123ABCD", "partition": "boot_a"}),
    (DfuFlash, {"driver": "dfu-util", "host": "fb-1", "device": "0483:df11", "alt": 1}),
    (OpenOcdFlash, {"driver": "openocd", "host": "jtag-1", "config": "board/stm32f4discovery.cfg"}),
    (CommandFlash, {"driver": "command", "write": "flash {image}", "version": "fwver"}),
]
EXAMPLES = {
    example["driver"]: model.model_validate(example).model_dump(exclude={"secret"})
    for model, example in WIRING
}


async def no_transfer(local: Path, remote: str, *, timeout: float) -> str:
    raise AssertionError("building a driver transfers nothing")


def api_driver_names(config: object) -> set[str]:
    """The drivers with a wiring model of their own: the ``driver`` literals of the built-ins' models."""
    models = [model for model in get_args(get_args(config)[0]) if not issubclass(model, SiteDriver)]
    return {name for model in models for name in get_args(model.model_fields["driver"].annotation)}


def test_every_wiring_model_names_a_registered_driver() -> None:
    # Validates: 6.3
    # A built-in without a model of its own would be checked as a site's driver is, by its resource.
    assert api_driver_names(FlashConfig) <= set(BUILTIN)
    assert set(EXAMPLES) == set(BUILTIN)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_registered_name_builds_a_flash_driver_from_its_api_wiring(name: str) -> None:
    # Validates: 6.3
    flash = build_flash(name, EXAMPLES[name], FlashDeps(runner=FakeRunner(), transfer=no_transfer))
    assert isinstance(flash, FlashProtocol)
    public = {member for member in dir(flash) if not member.startswith("_")}
    assert public == {
        n for n, _ in inspect.getmembers(FlashProtocol, inspect.isfunction) if not n.startswith("_")
    }


def test_building_names_what_is_missing() -> None:
    # Validates: 8.1, 6.3
    with pytest.raises(NotFound, match="no flash driver called 'uuu'"):
        build_flash("uuu", {}, FlashDeps())
    with pytest.raises(Invalid) as missing:
        build_flash("dd", {"host": "mux-1"}, FlashDeps(runner=FakeRunner(), transfer=no_transfer))
    assert missing.value.field == "device"
    with pytest.raises(Invalid, match="needs a file transfer"):
        build_flash("fastboot", EXAMPLES["fastboot"], FlashDeps(runner=FakeRunner()))
    # Site commands run where the image already is: no transfer needed.
    assert build_flash("command", EXAMPLES["command"], FlashDeps(runner=FakeRunner()))


def test_site_drivers_come_from_entry_points_only_when_asked() -> None:
    # Validates: 6.3
    toy = EntryPoint("toy-isp", "tests.hw.test_flash_registry:TOY", "labfleet.flash_drivers")
    drivers = with_site_drivers([toy])
    assert set(drivers) == set(BUILTIN) | {"toy-isp"}
    assert isinstance(build_flash("toy-isp", {}, FlashDeps(), drivers=drivers), FakeFlash)
    with pytest.raises(Conflict):
        with_site_drivers([toy], builtin=drivers)
    with pytest.raises(Invalid, match="names a driver called toy-isp"):
        with_site_drivers([EntryPoint("dd", "tests.hw.test_flash_registry:TOY", "labfleet.flash_drivers")])
    assert set(with_site_drivers()) == set(BUILTIN)


async def test_the_in_package_fake_behaves_like_a_flash_driver(tmp_path: Path) -> None:
    # Validates: 6.3, 8.5
    image = tmp_path / "fw.bin"
    image.write_bytes(b"firmware")
    flash = FakeFlash(version="v1")
    assert isinstance(flash, FlashProtocol)
    written = await flash.write(image, timeout=1)
    assert await flash.verify(written, timeout=1) is True
    assert await flash.read_version(timeout=1) == "v1"
