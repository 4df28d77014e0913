"""A resource's health and capacity through the API: the last check and why, the thresholds
it is judged by, its open alerts; what is free, and why it takes no new work when it does not.

Validates: 2.1, 2.2, 9.1, 9.4, 10.1 (the API of seed task 15.4)
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import BoardHealth, BuildServer, Host, UtilizationSample
from labfleet.services.core import alerts
from tests.api.test_reservations_api import add_board, add_host, hold
from tests.db.build_rows import build_job


async def test_a_host_s_health_and_capacity(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    host = await add_host(session, "kvm-4", utilization_threshold_pct=80)
    assert (
        await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=6, memory_mb=4096))
    ).status_code == 201
    checked = utcnow() - timedelta(seconds=20)
    row = await session.get(Host, host)
    assert row is not None
    row.checked_at, row.check_failures, row.last_check_error = checked, 2, "libvirt: connection refused"
    session.add(
        UtilizationSample(
            host_id=host, taken_at=checked, cpu_pct=35.0, memory_pct=91.0, storage_pct=40.0, running_vms=3
        )
    )
    await alerts.raise_alert(
        session=session,
        resource_kind="host",
        resource_id=host,
        kind="unreachable",
        severity="critical",
        message="m",
    )
    await session.commit()

    health = (await client.get(f"/api/v1/hosts/{host}/health", headers=as_role["viewer"])).json()
    assert (
        health["name"],
        health["status"]["value"],
        health["answered"],
        health["consecutive_failures"],
    ) == (
        "kvm-4",
        "online",
        False,
        2,
    )
    assert health["why"] == "libvirt: connection refused"
    assert health["check_interval_seconds"] == 60.0
    assert health["thresholds"] == {"failure_limit": 3}
    assert health["details"]["running_vms"] == 3
    assert [a["kind"] for a in health["open_alerts"]] == ["unreachable"]

    capacity = (await client.get(f"/api/v1/hosts/{host}/capacity")).json()
    assert capacity["total"] == {"vcpus": 8, "memory_mb": 16384, "storage_gb": 100.0}
    assert capacity["reserved"]["vcpus"] == 6
    assert capacity["free"] == {"vcpus": 2, "memory_mb": 12288, "storage_gb": 100.0}
    assert capacity["used"]["memory_pct"] == 91.0
    assert capacity["takes_new_work"] is False
    assert capacity["why_not"] == ["memory at 91% is above its threshold of 80%"]
    assert (await client.get("/api/v1/hosts/999999/capacity")).status_code == 404


async def test_a_build_server_s_capacity_says_why_it_takes_no_build(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    server = BuildServer(
        hostname="bs-7",
        address="10.0.0.7",
        ssh_user="build",
        max_concurrent_builds=2,
        cpu_cores=8,
        disk_free_gb=6.5,
        disk_total_gb=500.0,
        load_1m=14.0,
        checked_at=utcnow(),
    )
    session.add(server)
    await session.flush()
    ident = server.id
    await build_job(session, status="running", build_server_id=ident, finished_at=None)
    await session.commit()

    capacity = (await client.get(f"/api/v1/build-servers/{ident}/capacity")).json()
    assert (capacity["slots"], capacity["running"], capacity["free_slots"]) == (2, 1, 1)
    assert capacity["takes_new_work"] is False
    assert capacity["why_not"] == [
        "6.5 GB of disk free, below the critical 10 GB",
        "load 14 on 8 cores is above 1.5 per core",
    ]
    health = (await client.get(f"/api/v1/build-servers/{ident}/health")).json()
    assert (health["answered"], health["why"]) == (True, None)
    assert health["thresholds"] == {"failure_limit": 3, "disk_warning_gb": 50.0, "disk_critical_gb": 10.0}


async def test_a_board_s_health_tells_its_sensors_and_a_never_checked_one_says_so(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    board = await add_board(session, "rpi-7")
    fresh = (await client.get(f"/api/v1/boards/{board}/health")).json()
    assert (fresh["checked_at"], fresh["answered"], fresh["next_check_after"]) == (None, None, None)

    session.add(
        BoardHealth(board_id=board, reachable=True, temperature_c=61.5, power_state="on", checked_at=utcnow())
    )
    await session.commit()
    health = (await client.get(f"/api/v1/boards/{board}/health")).json()
    assert health["details"]["temperature_c"] == 61.5
    assert health["details"]["power_state"] == "on"
    assert health["thresholds"]["temperature_critical_c"] == 95.0
    assert (await client.get("/api/v1/boards/999999/health")).status_code == 404


async def test_a_host_s_vms_come_from_its_libvirt_and_one_nobody_placed_is_a_stray(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # libvirt's own test driver: one running domain, "test", that labfleet never placed.
    host = await _host_at(session, "kvm-t", "test:///default")
    seen = await client.get(f"/api/v1/hosts/{host}/vms")
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert (body["count"], body["strays"], body["missing"]) == (1, 1, 0)
    [vm] = body["items"]
    assert (vm["name"], vm["running"], vm["stray"], vm["environment_id"]) == ("test", True, True, None)
    down = await _host_at(session, "kvm-x", "qemu+tcp://127.0.0.1:1/system")
    unreachable = await client.get(f"/api/v1/hosts/{down}/vms")
    assert unreachable.status_code in (502, 504), unreachable.text


async def _host_at(session: AsyncSession, name: str, uri: str) -> int:
    host = Host(hostname=name, address=f"{name}.lab", ssh_user="root", libvirt_uri=uri, labels=[])
    session.add(host)
    await session.commit()
    return host.id
