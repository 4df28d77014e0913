"""A site's drivers, installed as a distribution declaring entry points, wired through the API and used.

The distribution is a ``*.dist-info`` on ``sys.path`` whose ``entry_points.txt`` names the
drivers of ``tests/site_drivers.py``; labfleet finds them through importlib.metadata, as
it would an installed package's.

Validates: 6.3, 8.1, 18.1
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry
from labfleet.secretbox import SecretBox
from labfleet.services.flashing.access import FlashAccess, FlashWiring
from labfleet.services.inventory import boards
from labfleet.services.inventory.wiring import flash_drivers, power_drivers

ENTRY_POINTS = """\
[labfleet.power_drivers]
file-relay = tests.site_drivers:RELAY

[labfleet.flash_drivers]
file-isp = tests.site_drivers:ISP
"""
SECRET = {"username": "relay", "password": "relay-secret-pw"}


def _forget_loaded_drivers() -> None:
    power_drivers.cache_clear()
    flash_drivers.cache_clear()


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[None]:
    """The site's distribution on ``sys.path`` for this test, and labfleet's drivers loaded afresh."""
    root = tmp_path / "site-packages"
    dist = root / "labfleet_site_drivers-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labfleet-site-drivers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(root))
    _forget_loaded_drivers()
    try:
        yield
    finally:
        sys.path.remove(str(root))
        _forget_loaded_drivers()


@pytest.fixture
def relay(tmp_path: Path) -> Path:
    directory = tmp_path / "relay"
    directory.mkdir()
    return directory


def board(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "board_type": "site",
        "architecture": "arm64",
        "serial_number": f"SN-{name}",
        "console_url": "socket://127.0.0.1:1",
        **fields,
    }


async def test_a_site_driver_is_wired_through_the_api_and_switches_the_board(
    client: httpx.AsyncClient, session: AsyncSession, secrets: SecretBox, installed: None, relay: Path
) -> None:
    # Validates: 18.1
    power = {"driver": "file-relay", "state_dir": str(relay), "channel": "2", "secret": SECRET}
    flash = {"driver": "file-isp", "target": str(relay / "flashed.img")}
    r = await client.post("/api/v1/boards", json=board("site-1", power=power, flash=flash))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["power"] == {
        "driver": "file-relay",
        "params": {"state_dir": str(relay), "channel": 2},
        "secret_set": True,
    }
    assert created["flash"] == {
        "driver": "file-isp",
        "params": {"target": flash["target"]},
        "secret_set": False,
    }
    assert "relay-secret-pw" not in r.text

    base = f"/api/v1/boards/{created['id']}"
    on = await client.put(f"{base}/power", json={"state": "on"})
    assert on.status_code == 200, on.text
    assert (on.json()["status"]["value"], on.json()["power_state"]) == ("succeeded", "on")
    assert (relay / "channel-2").read_text() == "on\n"
    (relay / "channel-2").write_text("off\n")  # switched off by hand at the relay board
    assert (await client.get(f"{base}/power")).json()["power_state"] == "off"
    await client.put(f"{base}/power", json={"state": "on"})
    off = (await client.put(f"{base}/power", json={"state": "off"})).json()
    assert (off["status"]["value"], off["power_state"]) == ("succeeded", "off")
    assert (relay / "channel-2").read_text() == "off\n"

    # Flash access builds the site's flash driver from the stored wiring, with the board's name.
    image = relay / "fw.img"
    image.write_bytes(b"site firmware\n" * 64)
    async with FlashAccess(secrets) as access:
        driver = access.flash(FlashWiring.of(await boards.get(session=session, ident=created["id"])))
        digest = await driver.write(image, timeout=10)
    assert digest.size == image.stat().st_size
    assert (relay / "flashed.img").read_bytes() == image.read_bytes()
    assert (relay / "flashed.img.board").read_text() == "site-1"

    audit = await client.get("/api/v1/audit-log", params={"limit": 500})
    assert "relay-secret-pw" not in audit.text


async def test_a_refused_site_wiring_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, installed: None, relay: Path
) -> None:
    # Validates: 8.1, 18.1
    good = {"driver": "file-relay", "state_dir": str(relay), "channel": 1}
    wired = (await client.post("/api/v1/boards", json=board("site-2", power=good))).json()
    boards_before = (await client.get("/api/v1/boards")).json()["count"]
    audit_before = await session.scalar(select(func.count()).select_from(AuditEntry))

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({**good, "driver": "file-relai"}, "power.driver", "no power driver called 'file-relai'; known: "),
        ({"driver": "file-relay", "state_dir": str(relay)}, "power.channel", "channel is required"),
        ({**good, "channel": "two"}, "power.channel", "channel: Input should be a valid integer"),
        ({**good, "channel": 0}, "power.channel", "a relay channel is 1 or more"),
        ({**good, "colour": "red"}, "power.colour", "has no parameter 'colour'; its parameters: channel, "),
        ({**good, "driver": 7}, "power.driver", "Input should be a valid string"),
        ({**good, "host": "not a host"}, "power.host", "not a valid host name or IP address"),
    ]
    for power, field, reason in cases:
        for request in (
            client.post("/api/v1/boards", json=board("site-3", power={**power, "secret": SECRET})),
            client.patch(f"/api/v1/boards/{wired['id']}", json={"power": {**power, "secret": SECRET}}),
        ):
            r = await request
            assert r.status_code == 422, (power, r.text)
            problem = r.json()
            assert problem["field"] == field, problem
            assert problem["errors"] == [{"field": field, "reason": problem["errors"][0]["reason"]}]
            assert reason in problem["errors"][0]["reason"], problem
            assert "relay-secret-pw" not in r.text

    unknown = await client.post("/api/v1/boards", json=board("site-3", power={**good, "driver": "snmp"}))
    known = unknown.json()["detail"].split("known: ")[1].split(", ")
    assert {"file-relay", "pdudaemon", "command"} <= set(known)
    flash = await client.post("/api/v1/boards", json=board("site-3", flash={"driver": "file-isp"}))
    assert flash.status_code == 422 and flash.json()["field"] == "flash.target"
    named = await client.post(
        "/api/v1/boards", json=board("site-3", flash={"driver": "file-isp", "target": "/x", "board": "b"})
    )
    assert named.status_code == 422 and named.json()["field"] == "flash.board"

    assert (await client.get("/api/v1/boards")).json()["count"] == boards_before
    assert await session.scalar(select(func.count()).select_from(AuditEntry)) == audit_before
    shown = (await client.get(f"/api/v1/boards/{wired['id']}")).json()
    assert shown["power"] == {
        "driver": "file-relay",
        "params": {"state_dir": str(relay), "channel": 1},
        "secret_set": False,
    }


async def test_a_driver_is_known_only_once_its_package_is_installed(client: httpx.AsyncClient) -> None:
    # Validates: 18.1
    power = {"driver": "file-relay", "state_dir": "/tmp", "channel": 1}
    r = await client.post("/api/v1/boards", json=board("site-4", power=power))
    assert r.status_code == 422 and r.json()["field"] == "power.driver"
    assert "file-relay" not in r.json()["detail"].split("known: ")[1].split(", ")


async def test_the_openapi_document_describes_built_in_drivers_precisely_and_site_drivers_openly(
    client: httpx.AsyncClient,
) -> None:
    schemas = (await client.get("/api/v1/openapi.json")).json()["components"]["schemas"]
    pdudaemon = schemas["PduDaemonPower"]
    assert pdudaemon["properties"]["driver"]["const"] == "pdudaemon"
    assert {"url", "pdu", "outlet"} <= set(pdudaemon["required"])
    assert pdudaemon["additionalProperties"] is False
    site = schemas["SitePower"]
    assert site["additionalProperties"] is True and site["required"] == ["driver"]
    assert "pdudaemon" in site["properties"]["driver"]["not"]["enum"]
    assert "labfleet.flash_drivers" in schemas["SiteFlash"]["properties"]["driver"]["description"]
