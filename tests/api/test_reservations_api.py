"""Reservations through the API on both backends: capacity never over-committed, one holder per
board, expiry, release of exactly what was held, maintenance, removal refused while held, roles.

Validates: 11.5, 12.1, 12.4
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Board, Host, Reservation
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.services.core import tokens

PROBLEM = "application/problem+json"


async def add_host(session: AsyncSession, name: str = "kvm-1", **fields: Any) -> int:
    host = Host(
        hostname=name,
        address=f"{name}.lab",
        ssh_user="root",
        libvirt_uri=f"qemu+ssh://root@{name}.lab/system",
        cpu_cores=8,
        memory_mb=16384,
        storage_gb=100.0,
        labels=[],
        **fields,
    )
    session.add(host)
    await session.commit()
    return host.id


async def add_board(session: AsyncSession, name: str = "rpi-1", **fields: Any) -> int:
    board = Board(
        name=name,
        board_type="rpi4",
        architecture="arm64",
        serial_number=f"sn-{name}",
        labels=[],
        peripherals=[],
        **fields,
    )
    session.add(board)
    await session.commit()
    return board.id


async def count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Reservation)) or 0)


def hold(**fields: Any) -> dict[str, Any]:
    return {"purpose": "kernel CI run 4242", **fields}


async def test_host_capacity_is_never_over_committed_and_release_returns_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    host = await add_host(session)
    first = await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=6, memory_mb=8192))
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["owner"], body["active"], body["vcpus"]) == ("t-admin", True, 6)
    assert first.headers["location"] == body["url"]

    before = await count(session)
    over = await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=4))
    assert over.status_code == 409
    assert over.headers["content-type"] == PROBLEM
    assert over.json()["detail"] == "host kvm-1 cannot hold it: vCPUs: 4 asked, 2 free of 8"
    assert await count(session) == before

    fits = await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=2, memory_mb=8192))
    assert fits.status_code == 201
    full = await client.post("/api/v1/reservations", json=hold(host_id=host, memory_mb=1))
    assert full.status_code == 409
    assert "memory: 1 MB asked, 0 MB free of 16384 MB" in full.json()["detail"]

    released = await client.post(f"{body['url']}/release")
    assert released.status_code == 200
    assert (released.json()["active"], released.json()["release_reason"]) == (False, "released by t-admin")
    assert (await client.post(f"{body['url']}/release")).status_code == 409
    # Exactly what it held is free again: 6 vCPUs and 8192 MB, no more.
    again = await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=6, memory_mb=8192))
    assert again.status_code == 201
    assert (await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=1))).status_code == 409


async def test_a_board_has_one_holder_until_release_or_expiry(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    board = await add_board(session)
    mine = (await client.post("/api/v1/reservations", json=hold(board_id=board, expires_in_s=600))).json()
    taken = await client.post("/api/v1/reservations", json=hold(board_id=board))
    assert taken.status_code == 409
    assert taken.json()["field"] == "board_id"
    assert taken.json()["detail"].startswith(f"board rpi-1 is held by reservation #{mine['id']} (t-admin, ")

    extended = await client.post(f"{mine['url']}/extend", json={"expires_in_s": 7200})
    assert extended.status_code == 200
    assert extended.json()["expires_at"] > mine["expires_at"]

    # It expires (a CI job that was cancelled): the board is free again, the old one released.
    await session.execute(
        update(Reservation)
        .where(Reservation.id == mine["id"])
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()
    listed = (await client.get("/api/v1/reservations", params={"board_id": board})).json()
    assert listed["count"] == 0
    assert (await client.post(f"{mine['url']}/extend", json={"expires_in_s": 600})).status_code == 409
    next_one = await client.post("/api/v1/reservations", json=hold(board_id=board))
    assert next_one.status_code == 201
    old = (await client.get(mine["url"])).json()
    assert (old["active"], old["release_reason"]) == (False, "expired")
    history = (await client.get("/api/v1/reservations", params={"board_id": board, "active": "false"})).json()
    assert history["count"] == 2


@pytest.mark.parametrize("status", ["maintenance", "flashing", "offline", "failed", "decommissioned"])
async def test_a_board_that_is_not_online_takes_no_reservation(
    client: httpx.AsyncClient, session: AsyncSession, status: str
) -> None:
    board = await add_board(session, status=status)
    r = await client.post("/api/v1/reservations", json=hold(board_id=board))
    assert r.status_code == 409
    assert r.json()["detail"] == f"board rpi-1 is {status}: it takes no new reservations"


async def test_a_host_in_maintenance_takes_no_reservation_but_keeps_the_ones_it_has(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    host = await add_host(session)
    held = (await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=2))).json()
    await session.execute(update(Host).where(Host.id == host).values(status="maintenance"))
    await session.commit()
    r = await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=1))
    assert (r.status_code, r.json()["detail"]) == (
        409,
        "host kvm-1 is maintenance: it takes no new reservations",
    )
    assert (await client.get(held["url"])).json()["active"] is True


async def test_removing_a_held_host_or_board_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    host = await add_host(session)
    board = await add_board(session)
    h = (await client.post("/api/v1/reservations", json=hold(host_id=host, vcpus=1))).json()
    b = (await client.post("/api/v1/reservations", json=hold(board_id=board))).json()
    r = await client.delete(f"/api/v1/hosts/{host}")
    assert (r.status_code, r.json()["detail"]) == (
        409,
        f"cannot remove host {host}: reservation #{h['id']} holds it; release it first",
    )
    r = await client.delete(f"/api/v1/boards/{board}")
    assert r.status_code == 409
    assert f"#{b['id']}" in r.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, None),
        ({"host_id": 1, "board_id": 1}, None),
        ({"board_id": 1, "vcpus": 2}, None),
        ({"host_id": 1}, None),
        ({"board_id": 1, "expires_in_s": 5}, "expires_in_s"),
        ({"board_id": 1, "purpose": ""}, "purpose"),
        ({"host_id": 1, "vcpus": -1}, "vcpus"),
        ({"board_id": 1, "colour": "red"}, "colour"),
    ],
)
async def test_bad_requests_are_422_and_reserve_nothing(
    client: httpx.AsyncClient, session: AsyncSession, payload: dict[str, Any], field: str | None
) -> None:
    await add_board(session)
    await add_host(session)
    r = await client.post("/api/v1/reservations", json={**hold(), **payload})
    assert r.status_code == 422, r.text
    if field is not None:
        assert r.json()["field"] == field
    assert await count(session) == 0
    missing = await client.post("/api/v1/reservations", json=hold(board_id=999))
    assert (missing.status_code, missing.json()["field"]) == (404, "board_id")


async def test_only_the_owner_or_an_admin_changes_a_reservation(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    board = await add_board(session)
    assert (
        await client.post("/api/v1/reservations", json=hold(board_id=board), headers=as_role["viewer"])
    ).status_code == 403
    mine = (
        await client.post("/api/v1/reservations", json=hold(board_id=board), headers=as_role["operator"])
    ).json()
    assert mine["owner"] == "t-operator"
    actor = Actor(name="root", role=Role.admin)
    _, other = await tokens.create(session=session, actor=actor, name="other-op", role=Role.operator)
    await session.commit()
    refused = await client.post(f"{mine['url']}/release", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 403
    assert (
        refused.json()["detail"]
        == f"reservation #{mine['id']} belongs to t-operator; only they or an admin may change it"
    )
    assert (await client.post(f"{mine['url']}/release")).status_code == 200  # the admin may
