"""The artifacts API on both backends: listing, latest, downloads (ETag, ranges, 304), corruption, roles."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert
from labfleet.schemas.artifacts import ArtifactType
from labfleet.schemas.auth import SYSTEM
from labfleet.services.artifacts import service as artifacts
from labfleet.storage import LocalStore
from tests.db.build_rows import EPOCH, REPO, build_job, damage

DATA = bytes(range(256)) * 40  # 10240 bytes
PROBLEM = "application/problem+json"


@pytest.fixture
def store(app: FastAPI, tmp_path: Path) -> LocalStore:
    app.state.store = LocalStore(tmp_path / "artifacts", chunk_size=4096)
    return app.state.store  # type: ignore[no-any-return]


async def _artifact(
    session: AsyncSession,
    store: LocalStore,
    tmp_path: Path,
    *,
    data: bytes = DATA,
    created_at: datetime | None = None,
    **build: object,
) -> dict[str, Any]:
    """A stored artifact, as plain values (each request's rollback expires the session's rows)."""
    job = await build_job(session, **build)
    path = tmp_path / f"upload-{job.id}"
    path.write_bytes(data)
    artifact = await artifacts.store_artifact(
        session=session,
        store=store,
        build_job=job,
        path=path,
        name="Image",
        type=ArtifactType.kernel,
        actor=SYSTEM,
    )
    if created_at is not None:
        artifact.created_at = created_at
    await session.commit()
    return {"id": artifact.id, **artifacts.snapshot(artifact)}


async def test_list_filter_and_get(
    client: httpx.AsyncClient, session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.1, 4.3
    one = await _artifact(session, store, tmp_path)
    two = await _artifact(session, store, tmp_path, data=b"other", architecture="x86_64")
    body = (await client.get("/api/v1/artifacts")).json()
    assert body["count"] == 2
    by_build = (await client.get("/api/v1/artifacts", params={"build_id": one["build_job_id"]})).json()
    assert [a["id"] for a in by_build["items"]] == [one["id"]]
    by_commit = (await client.get("/api/v1/artifacts", params={"commit": two["commit"]})).json()
    assert [a["id"] for a in by_commit["items"]] == [two["id"]]
    by_arch = (
        await client.get("/api/v1/artifacts", params={"architecture": "x86_64", "type": "kernel"})
    ).json()
    assert [a["id"] for a in by_arch["items"]] == [two["id"]]
    assert (await client.get("/api/v1/artifacts", params={"type": "tarball"})).status_code == 422
    got = (await client.get(f"/api/v1/artifacts/{one['id']}")).json()
    assert got["sha256"] == hashlib.sha256(DATA).hexdigest()
    assert (got["size"], got["type"], got["display"], got["repository_url"]) == (
        len(DATA),
        "kernel",
        "Image",
        REPO,
    )
    assert got["download_url"].endswith(f"/api/v1/artifacts/{one['id']}/download")
    assert (await client.get("/api/v1/artifacts/999999")).status_code == 404


async def test_latest_resolves_to_the_newest_succeeded_build(
    client: httpx.AsyncClient, session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.5
    params = {"repository": REPO, "branch": "main", "architecture": "arm64"}
    r = await client.get("/api/v1/artifacts/latest", params=params)
    assert r.status_code == 404 and r.headers["content-type"] == PROBLEM
    good = await _artifact(session, store, tmp_path)
    await _artifact(session, store, tmp_path, data=b"broken build", status="failed")
    body = (await client.get("/api/v1/artifacts/latest", params=params)).json()
    assert body["build_job_id"] == good["build_job_id"]
    assert [a["id"] for a in body["items"]] == [good["id"]]


async def test_download_with_length_etag_ranges_and_304(
    client: httpx.AsyncClient, session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.2 (download over HTTP with Content-Length, ETag = checksum, ranges)
    artifact = await _artifact(session, store, tmp_path)
    url = f"/api/v1/artifacts/{artifact['id']}/download"
    etag = f'"{artifact["sha256"]}"'

    r = await client.get(url)
    assert r.status_code == 200 and r.content == DATA
    assert r.headers["content-length"] == str(len(DATA))
    assert r.headers["etag"] == etag and r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-disposition"].startswith('attachment; filename="Image"')

    r = await client.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == DATA[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(DATA)}"
    assert r.headers["content-length"] == "100"

    r = await client.get(url, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == DATA[-10:]
    r = await client.get(url, headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.content == DATA[10000:]
    r = await client.get(url, headers={"Range": "bytes=10000-99999"})
    assert r.status_code == 206 and r.content == DATA[10000:]

    r = await client.get(url, headers={"Range": f"bytes={len(DATA)}-"})
    assert r.status_code == 416 and r.headers["content-type"] == PROBLEM
    assert r.headers["content-range"] == f"bytes */{len(DATA)}"

    # Several ranges, or a range for another version (If-Range), get the whole artifact.
    r = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.content == DATA
    r = await client.get(url, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
    assert r.status_code == 200 and r.content == DATA

    r = await client.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = await client.get(url, headers={"If-None-Match": '"something-else"'})
    assert r.status_code == 200


async def test_a_corrupted_artifact_is_a_problem_and_one_alert(
    client: httpx.AsyncClient, session: AsyncSession, store: LocalStore, tmp_path: Path
) -> None:
    # Validates: 4.2 (property 4 at the edge), 16.2
    artifact = await _artifact(session, store, tmp_path)
    damage(store.root, artifact["sha256"], at=len(DATA) - 1)
    url = f"/api/v1/artifacts/{artifact['id']}/download"
    for headers in ({}, {"Range": "bytes=0-99"}, {}):
        r = await client.get(url, headers=headers)
        assert r.status_code == 500, r.text
        assert r.headers["content-type"] == PROBLEM
        assert "corrupted" in r.json()["detail"]
    alerts = list(await session.scalars(select(Alert).where(Alert.resource_kind == "artifact")))
    assert len(alerts) == 1
    assert (alerts[0].resource_id, alerts[0].kind, alerts[0].severity) == (
        artifact["id"],
        "corrupted",
        "critical",
    )
    assert alerts[0].occurrences == 3


async def test_pins_and_retention_by_role(
    client: httpx.AsyncClient,
    session: AsyncSession,
    store: LocalStore,
    tmp_path: Path,
    as_role: dict[str, dict[str, str]],
) -> None:
    # Validates: 4.4 (viewer reads, operator pins, admin runs retention)
    made = []
    for day in range(3):
        made.append(
            await _artifact(
                session,
                store,
                tmp_path,
                data=f"kernel {day}".encode(),
                created_at=EPOCH + timedelta(days=day),
            )
        )
    viewer, operator = as_role["viewer"], as_role["operator"]
    assert (await client.get("/api/v1/artifacts", headers=viewer)).status_code == 200
    assert (
        await client.get(f"/api/v1/artifacts/{made[0]['id']}/download", headers=viewer)
    ).status_code == 200
    pin = f"/api/v1/artifacts/{made[0]['id']}/pin"
    assert (await client.post(pin, headers=viewer)).status_code == 403
    r = await client.post(pin, headers=operator)
    assert r.status_code == 200 and r.json()["pinned"] is True

    retention = "/api/v1/artifacts/retention"
    assert (await client.post(retention, json={"keep_last": 1}, headers=operator)).status_code == 403
    r = await client.post(retention, json={"keep_last": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["keep_last"], body["count"]) == (1, 1)
    assert [a["id"] for a in body["items"]] == [made[1]["id"]]
    assert body["blobs_removed"] == [made[1]["sha256"]]
    assert (await client.get(f"/api/v1/artifacts/{made[1]['id']}")).status_code == 404
    assert (await client.post(retention, json={"keep_last": 0})).status_code == 422

    r = await client.delete(pin, headers=operator)
    assert r.status_code == 200 and r.json()["pinned"] is False
    # With the stored policy (the last 10 builds), nothing more goes.
    r = await client.post(retention)
    assert r.status_code == 200 and r.json()["count"] == 0
