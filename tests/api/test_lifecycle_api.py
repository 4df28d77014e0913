"""Maintenance, back online after a health check, decommission (R12) for hosts and boards.

Validates: 12.1, 12.2, 12.3, 12.4, 12.5
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.errors import Unreachable
from labfleet.hw.probe import MachineFacts
from labfleet.hw.ssh import SshTarget
from labfleet.hw.ssh_server import new_private_key
from labfleet.services.health.probes import BoardAccess, HostAccess
from tests.api.test_reservations_api import add_board, add_host, hold
from tests.factories import build_server


class Probe:
    """Answers, or not, as the test says; remembers what it was asked."""

    def __init__(self) -> None:
        self.answers = True
        self.disk_free_gb = 500.0
        self.asked: list[str] = []

    async def host(self, access: HostAccess) -> None:
        self.asked.append(access.name)
        if not self.answers:
            raise Unreachable(f"{access.libvirt_uri}: connection refused")

    async def board(self, access: BoardAccess) -> None:
        self.asked.append(access.name)
        if not self.answers:
            raise Unreachable(f"{access.console_url}: the console said nothing within 8 s")

    async def build_server(self, ssh: SshTarget) -> MachineFacts:
        self.asked.append(ssh.host)
        if not self.answers:
            raise Unreachable(f"{ssh.where}: connection refused")
        gb = 1024**3
        return MachineFacts(
            cpu_count=16,
            architecture="x86_64",
            memory_total_bytes=64 * gb,
            memory_available_bytes=48 * gb,
            disk_path=".",
            disk_total_bytes=1000 * gb,
            disk_free_bytes=int(self.disk_free_gb * gb),
            load=(0.5, 0.4, 0.3),
            toolchains=(),
        )


@pytest.fixture
def probe(app: FastAPI) -> Probe:
    app.state.probe = Probe()
    return app.state.probe  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", ["hosts", "boards"])
async def test_maintenance_then_back_online_only_after_a_health_check(
    client: httpx.AsyncClient, session: AsyncSession, probe: Probe, kind: str
) -> None:
    ident = await (add_host(session) if kind == "hosts" else add_board(session, console_url="socket://c:1"))
    target = {"hosts": "host_id", "boards": "board_id"}[kind]
    extra = {"vcpus": 1} if kind == "hosts" else {}
    running = (await client.post("/api/v1/reservations", json=hold(**{target: ident}, **extra))).json()

    r = await client.put(f"/api/v1/{kind}/{ident}/status", json={"status": "maintenance"})
    assert (r.status_code, r.json()["status"]["value"]) == (200, "maintenance")
    assert probe.asked == []  # going into maintenance asks nothing
    # Work already there goes on; nothing new is taken.
    assert (await client.get(running["url"])).json()["active"] is True
    refused = await client.post("/api/v1/reservations", json=hold(**{target: ident}, **extra))
    assert refused.status_code == 409
    assert "maintenance" in refused.json()["detail"]

    probe.answers = False
    r = await client.put(f"/api/v1/{kind}/{ident}/status", json={"status": "online"})
    assert r.status_code == 409
    assert "failed its health check, so it stays maintenance" in r.json()["detail"]
    assert (await client.get(f"/api/v1/{kind}/{ident}")).json()["status"]["value"] == "maintenance"

    probe.answers = True
    r = await client.put(f"/api/v1/{kind}/{ident}/status", json={"status": "online"})
    assert (r.status_code, r.json()["status"]["value"]) == (200, "online")
    assert len(probe.asked) == 2


@pytest.mark.parametrize("kind", ["hosts", "boards"])
async def test_decommission_is_refused_while_reserved_and_keeps_the_history(
    client: httpx.AsyncClient, session: AsyncSession, probe: Probe, kind: str
) -> None:
    ident = await (add_host(session) if kind == "hosts" else add_board(session))
    target = {"hosts": "host_id", "boards": "board_id"}[kind]
    extra = {"vcpus": 1} if kind == "hosts" else {}
    held = (await client.post("/api/v1/reservations", json=hold(**{target: ident}, **extra))).json()
    r = await client.put(f"/api/v1/{kind}/{ident}/status", json={"status": "decommissioned"})
    assert r.status_code == 409
    assert f"reservation #{held['id']} holds it" in r.json()["detail"]
    await client.post(f"{held['url']}/release")
    r = await client.put(f"/api/v1/{kind}/{ident}/status", json={"status": "decommissioned"})
    assert (r.status_code, r.json()["status"]["value"]) == (200, "decommissioned")
    # Out of the pool, in the history: still listed, its reservations still there, none new.
    assert (await client.get(f"/api/v1/{kind}/{ident}")).status_code == 200
    history = (await client.get("/api/v1/reservations", params={target: ident, "active": "false"})).json()
    assert history["count"] == 1
    assert (
        await client.post("/api/v1/reservations", json=hold(**{target: ident}, **extra))
    ).status_code == 409
    bad = await client.put(f"/api/v1/{kind}/{ident}/status", json={"status": "flashing"})
    assert (bad.status_code, bad.json()["field"]) == (422, "status")


async def test_a_board_being_flashed_keeps_its_status(
    client: httpx.AsyncClient, session: AsyncSession, probe: Probe
) -> None:
    ident = await add_board(session, status="flashing")
    r = await client.put(f"/api/v1/boards/{ident}/status", json={"status": "maintenance"})
    assert (r.status_code, r.json()["detail"]) == (
        409,
        "board rpi-1 is being flashed; its flash job sets its status when it ends",
    )


async def test_only_admins_change_the_lifecycle(
    client: httpx.AsyncClient, session: AsyncSession, probe: Probe, as_role: dict[str, dict[str, str]]
) -> None:
    ident = await add_host(session)
    r = await client.put(
        f"/api/v1/hosts/{ident}/status", json={"status": "maintenance"}, headers=as_role["operator"]
    )
    assert r.status_code == 403


async def test_a_build_server_leaves_maintenance_only_after_a_passing_health_check(
    client: httpx.AsyncClient, probe: Probe
) -> None:
    # Validates: 12.3 (build servers as hosts and boards)
    ssh = {"username": "builder", "port": 22, "private_key": new_private_key()}
    made = (await client.post("/api/v1/build-servers", json=build_server(address="10.9.0.7", ssh=ssh))).json()
    url = f"/api/v1/build-servers/{made['id']}"
    assert (await client.put(f"{url}/status", json={"status": "maintenance"})).status_code == 200
    assert probe.asked == []

    probe.answers = False
    r = await client.put(f"{url}/status", json={"status": "online"})
    assert r.status_code == 409, r.text
    assert r.json()["detail"].startswith(
        f"build server {made['hostname']} failed its health check, so it stays"
    )
    assert "connection refused" in r.json()["detail"]

    probe.answers, probe.disk_free_gb = True, 4.0
    r = await client.put(f"{url}/status", json={"status": "online"})
    assert r.status_code == 409
    assert "its workspace disk has 4.0 GB free, below the critical 10 GB" in r.json()["detail"]
    assert (await client.get(url)).json()["status"]["value"] == "maintenance"

    probe.disk_free_gb = 200.0
    r = await client.put(f"{url}/status", json={"status": "online"})
    assert (r.status_code, r.json()["status"]["value"]) == (200, "online")
    assert probe.asked == ["10.9.0.7"] * 3
