"""The flashing API: asking for a flash (202, a queued job), roles, refusals, the job and the history.

The jobs are run by the engine (``tests/services/flashing/test_service.py``); here they stay queued.

Validates: 6.1, 6.2
"""

from __future__ import annotations

import itertools

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, Board

_n = itertools.count(1)


async def board(session: AsyncSession, *, flash: bool = True, architecture: str = "arm64") -> Board:
    """A board, committed; the rows come back plain (the request's rollback would expire them)."""
    n = next(_n)
    row = Board(
        name=f"api-flash-{n}",
        board_type="fake",
        architecture=architecture,
        serial_number=f"API-FL-{n}",
        console_url="socket://127.0.0.1:1",
        power_driver="command",
        power_params={"on": "true", "off": "true"},
        flash_driver="dd" if flash else None,
        flash_params={"host": "flash-host", "device": "/dev/sdb"} if flash else {},
    )
    session.add(row)
    await session.commit()
    session.expunge(row)
    return row


async def artifact(session: AsyncSession, *, architecture: str = "arm64") -> Artifact:
    n = next(_n)
    row = Artifact(
        sha256=f"{n:064x}",
        size=1024,
        name=f"img-{n}.img",
        type="firmware",
        repository_url="file:///repo",
        branch="main",
        commit=f"{n:040x}",
        architecture=architecture,
    )
    session.add(row)
    await session.commit()
    session.expunge(row)
    return row


async def test_an_operator_queues_a_flash_and_the_board_becomes_flashing(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    # Validates: 6.2
    b = await board(session)
    a = await artifact(session)
    denied = await client.post(
        f"/api/v1/boards/{b.id}/flash", json={"artifact_id": a.id}, headers=as_role["viewer"]
    )
    assert denied.status_code == 403

    r = await client.post(
        f"/api/v1/boards/{b.id}/flash",
        json={"artifact_id": a.id, "version": "1.2"},
        headers=as_role["operator"],
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"]["value"] == "queued"
    assert (job["board"], job["target_version"], job["boot_check"], job["previous_status"]) == (
        b.name,
        "1.2",
        True,
        "online",
    )
    assert job["progress"] == {"phase": None, "bytes_done": 0, "bytes_total": 1024}
    shown = (await client.get(f"/api/v1/boards/{b.id}")).json()
    assert shown["status"]["value"] == "flashing"

    one = await client.get(f"/api/v1/flash-jobs/{job['id']}", headers=as_role["viewer"])
    assert one.status_code == 200 and one.json()["id"] == job["id"]
    listed = (await client.get(f"/api/v1/boards/{b.id}/flash-jobs", headers=as_role["viewer"])).json()
    assert listed["count"] == 1 and listed["items"][0]["id"] == job["id"]
    assert (await client.get(f"/api/v1/boards/{b.id}/flash-jobs?status=succeeded")).json()["count"] == 0

    again = await client.post(f"/api/v1/boards/{b.id}/flash", json={"artifact_id": a.id})
    assert again.status_code == 409
    assert "being flashed" in again.json()["detail"]
    reserve = await client.post("/api/v1/reservations", json={"board_id": b.id, "purpose": "tests"})
    assert reserve.status_code == 409
    power = await client.put(f"/api/v1/boards/{b.id}/power", json={"state": "on"})
    assert power.status_code == 409


async def test_an_artifact_of_another_architecture_or_none_at_all_is_422(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Validates: 6.1
    b = await board(session)
    x86 = await artifact(session, architecture="x86_64")
    r = await client.post(f"/api/v1/boards/{b.id}/flash", json={"artifact_id": x86.id})
    assert r.status_code == 422
    assert "x86_64" in r.json()["detail"]
    missing = await client.post(f"/api/v1/boards/{b.id}/flash", json={"artifact_id": 987654})
    assert missing.status_code == 422
    unknown_field = await client.post(f"/api/v1/boards/{b.id}/flash", json={"artifact_id": x86.id, "x": 1})
    assert unknown_field.status_code == 422
    assert (await client.get(f"/api/v1/boards/{b.id}")).json()["status"]["value"] == "online"


@pytest.mark.parametrize("path", ["/api/v1/flash-jobs/987654", "/api/v1/boards/987654/flash-jobs"])
async def test_unknown_jobs_and_boards_are_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_refusals_are_409(client: httpx.AsyncClient, session: AsyncSession) -> None:
    # Validates: 6.2
    a = await artifact(session)
    assert (await client.post("/api/v1/boards/987654/flash", json={"artifact_id": a.id})).status_code == 404
    no_station = await board(session, flash=False)
    r = await client.post(f"/api/v1/boards/{no_station.id}/flash", json={"artifact_id": a.id})
    assert r.status_code == 409 and "no flash station" in r.json()["detail"]
    for status in ("maintenance", "decommissioned", "failed"):
        b = await board(session)
        await session.execute(update(Board).where(Board.id == b.id).values(status=status))
        await session.commit()
        r = await client.post(f"/api/v1/boards/{b.id}/flash", json={"artifact_id": a.id})
        assert r.status_code == 409, (status, r.text)
    forced = await client.post(f"/api/v1/boards/{b.id}/flash", json={"artifact_id": a.id, "force": True})
    assert forced.status_code == 202
