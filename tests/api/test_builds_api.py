"""The build-jobs API on both backends: submit with placement, 422s that name the field and change
nothing, queued estimates, cancel, retry, logs by byte offset, roles.

Validates: 3.1, 3.2, 3.3, 3.5, 13.5
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildJob, BuildServer, Toolchain
from labfleet.db.repositories import builds as repo

PROBLEM = "application/problem+json"
REPO = "https://git.example.org/kernel.git"


async def add_server(session: AsyncSession, name: str, archs: tuple[str, ...], **fields: Any) -> int:
    server = BuildServer(
        hostname=name,
        address=f"{name}.lab",
        ssh_user="ci",
        cpu_cores=8,
        disk_free_gb=200.0,
        load_1m=0.5,
        labels=[],
        toolchains=[
            Toolchain(
                compiler="gcc", target_triplet=t, architecture=a, version="12", path=f"/usr/bin/{t}-gcc"
            )
            for a, t in (("x86_64", "x86_64-linux-gnu"), ("arm64", "aarch64-linux-gnu"))
            if a in archs
        ],
        **fields,
    )
    session.add(server)
    await session.commit()
    return server.id


def build(**fields: Any) -> dict[str, Any]:
    return {
        "repository_url": REPO,
        "branch": "main",
        "architecture": "x86_64",
        "make_target": "bzImage",
        "defconfig": "defconfig",
        "artifacts": [{"path": "arch/x86/boot/bzImage", "type": "kernel"}],
        **fields,
    }


async def job_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(BuildJob)) or 0)


@pytest.fixture
async def servers(session: AsyncSession) -> dict[str, int]:
    return {
        "x86-1": await add_server(session, "x86-1", ("x86_64",), max_concurrent_builds=1),
        "both": await add_server(session, "both", ("x86_64", "arm64"), max_concurrent_builds=2),
    }


async def test_submit_places_the_build_and_explains_why(
    client: httpx.AsyncClient, servers: dict[str, int]
) -> None:
    r = await client.post("/api/v1/build-jobs", json=build())
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == body["url"]
    assert body["status"]["value"] == "queued"
    assert body["build_server_id"] in servers.values()
    assert body["build_server"] in servers
    assert body["artifact_specs"] == [{"path": "arch/x86/boot/bzImage", "type": "kernel", "name": "bzImage"}]
    assert body["estimated_start_at"] is not None
    explanation = body["decision"]["explanation"]
    assert explanation["chosen_id"] == body["build_server_id"]
    assert {c["name"] for c in explanation["candidates"]} == set(servers)
    # Shown again on request only.
    shown = (await client.get(body["url"])).json()
    assert shown["decision"] is None
    assert (await client.get(body["url"], params={"explain": "true"})).json()["decision"] == body["decision"]


async def test_arm64_goes_to_the_only_server_with_its_toolchain(
    client: httpx.AsyncClient, servers: dict[str, int]
) -> None:
    body = (await client.post("/api/v1/build-jobs", json=build(architecture="aarch64"))).json()
    assert (body["architecture"], body["build_server"]) == ("arm64", "both")
    excluded = {c["name"]: c for c in body["decision"]["explanation"]["candidates"]}["x86-1"]
    assert "no toolchain for arm64" in str(excluded)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"architecture": "riscv64"}, "architecture"),
        ({"server": "nowhere"}, "server"),
        ({"architecture": "sparc"}, "architecture"),
        ({"branch": None}, None),
        ({"command": "make"}, None),
        ({"artifacts": [{"path": "../etc/passwd", "type": "kernel"}]}, "artifacts.0.path"),
        ({"artifacts": [{"path": "a", "type": "bootloader"}]}, "artifacts.0.type"),
        ({"repository_url": "not a url"}, "repository_url"),
        ({"commit": "xyz"}, "commit"),
        ({"priority": 1000}, "priority"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_bad_submissions_are_422_naming_the_field_and_create_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    servers: dict[str, int],
    fields: dict[str, Any],
    field: str | None,
) -> None:
    before = await job_count(session)
    r = await client.post("/api/v1/build-jobs", json=build(**fields))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    if field is not None:
        assert problem["field"] == field
    assert problem["detail"]
    assert await job_count(session) == before


async def test_no_toolchain_anywhere_is_rejected_at_once(
    client: httpx.AsyncClient, servers: dict[str, int]
) -> None:
    r = await client.post("/api/v1/build-jobs", json=build(architecture="riscv64"))
    assert r.status_code == 422
    assert r.json()["detail"] == "no server has a toolchain for riscv64"


async def test_busy_servers_queue_builds_with_later_estimates(
    client: httpx.AsyncClient, session: AsyncSession, servers: dict[str, int]
) -> None:
    first = (await client.post("/api/v1/build-jobs", json=build(server="x86-1"))).json()
    second = (await client.post("/api/v1/build-jobs", json=build(server="x86-1"))).json()
    assert first["build_server"] == second["build_server"] == "x86-1"
    listed = (await client.get("/api/v1/build-jobs", params={"status": "queued"})).json()
    assert listed["count"] == 2
    starts = {j["id"]: j["estimated_start_at"] for j in listed["items"]}
    assert starts[first["id"]] < starts[second["id"]]
    server = (await client.get(f"/api/v1/build-servers/{servers['x86-1']}")).json()
    assert (server["active_builds"], server["queued_builds"]) == (0, 2)


async def test_cancel_and_retry(client: httpx.AsyncClient, servers: dict[str, int]) -> None:
    job = (await client.post("/api/v1/build-jobs", json=build())).json()
    r = await client.post(f"{job['url']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"]["value"] == "cancelled"
    assert r.json()["failure_reason"] == "cancelled by t-admin"
    again = await client.post(f"{job['url']}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]

    retried = await client.post(f"{job['url']}/retry")
    assert retried.status_code == 201
    new = retried.json()
    assert (new["retry_of_id"], new["attempt"], new["status"]["value"]) == (job["id"], 2, "queued")
    assert (await client.post(f"{new['url']}/retry")).status_code == 409
    assert (await client.post("/api/v1/build-jobs/999999/cancel")).status_code == 404


async def test_logs_resume_at_any_byte_offset(
    client: httpx.AsyncClient, session: AsyncSession, servers: dict[str, int]
) -> None:
    job = (await client.post("/api/v1/build-jobs", json=build())).json()
    empty = await client.get(job["logs_url"])
    assert (empty.status_code, empty.content, empty.headers["x-log-size"]) == (200, b"", "0")
    text = "héllo\nwörld\n" * 50
    for part in (text[:100], text[100:333], text[333:]):
        await repo.append_log_unheld(session, job_id=job["id"], data=part.encode())
    await session.commit()
    whole = text.encode()
    for offset in (0, 1, 99, 100, 101, len(whole) - 1, len(whole)):
        r = await client.get(job["logs_url"], params={"offset": offset})
        assert r.content == whole[offset:]
        assert (r.headers["x-log-offset"], r.headers["x-log-size"]) == (str(offset), str(len(whole)))
        assert r.headers["x-log-complete"] == "false"  # still queued: more may come
    limited = await client.get(job["logs_url"], params={"offset": 5, "limit": 7})
    assert limited.content == whole[5:12]
    past = await client.get(job["logs_url"], params={"offset": len(whole) + 1})
    assert (past.status_code, past.json()["field"]) == (422, "offset")


async def test_roles(
    client: httpx.AsyncClient, servers: dict[str, int], as_role: dict[str, dict[str, str]]
) -> None:
    r = await client.post("/api/v1/build-jobs", json=build(), headers=as_role["viewer"])
    assert r.status_code == 403
    job = (await client.post("/api/v1/build-jobs", json=build(), headers=as_role["operator"])).json()
    assert job["submitted_by"] == "t-operator"
    for url in ("/api/v1/build-jobs", job["url"], job["logs_url"]):
        assert (await client.get(url, headers=as_role["viewer"])).status_code == 200
    assert (await client.post(f"{job['url']}/cancel", headers=as_role["viewer"])).status_code == 403
    assert (await client.get("/api/v1/build-jobs", headers={"Authorization": ""})).status_code == 401
    bad = await client.get("/api/v1/build-jobs", params={"status": "exploded"})
    assert (bad.status_code, bad.json()["field"]) == (422, "status")


async def test_maintenance_decommission_and_removal_of_a_build_server(
    client: httpx.AsyncClient, session: AsyncSession, servers: dict[str, int]
) -> None:
    url = f"/api/v1/build-servers/{servers['x86-1']}"
    r = await client.put(f"{url}/status", json={"status": "maintenance"})
    assert (r.status_code, r.json()["status"]["value"]) == (200, "maintenance")
    assert r.json()["check_failures"] == 0
    # Submitted for it alone while it is in maintenance: accepted, waiting for it.
    job = (await client.post("/api/v1/build-jobs", json=build(server="x86-1"))).json()
    assert (job["status"]["value"], job["build_server_id"], job["server_choice"]) == (
        "queued",
        None,
        str(servers["x86-1"]),
    )
    assert job["estimated_start_at"] is None
    # It would be stranded: removal is refused until it is cancelled.
    refused = await client.delete(url)
    assert refused.status_code == 409
    assert f"#{job['id']}" in refused.json()["detail"]
    bad = await client.put(f"{url}/status", json={"status": "offline"})
    assert (bad.status_code, bad.json()["field"]) == (422, "status")
    assert (await client.post(f"{job['url']}/cancel")).status_code == 200
    gone = await client.put(f"{url}/status", json={"status": "decommissioned"})
    assert (gone.status_code, gone.json()["status"]["value"]) == (200, "decommissioned")
    r = await client.post("/api/v1/build-jobs", json=build(server="x86-1"))
    assert (r.status_code, r.json()["field"]) == (422, "server")
    assert "decommissioned" in r.json()["detail"]
    assert (await client.delete(url)).status_code == 204
