"""Every endpoint needs a token; roles viewer < operator < admin decide what it may do."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import Role
from labfleet.services.core import tokens
from tests.factories import COLLECTIONS, board

PROBLEM = "application/problem+json"


def every_operation(app: FastAPI) -> list[tuple[str, str]]:
    spec = app.openapi()
    return [
        (method.upper(), path.replace("{id}", "1")) for path, ops in spec["paths"].items() for method in ops
    ]


async def test_every_operation_without_a_token_is_401(app: FastAPI, client: httpx.AsyncClient) -> None:
    operations = every_operation(app)
    assert len(operations) >= 20
    for method, path in operations:
        r = await client.request(method, path, headers={"Authorization": ""})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["lf_not-a-real-token", "garbage", "Basic abc"])
async def test_an_unknown_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    r = await client.get("/api/v1/boards", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


async def test_viewer_reads_but_cannot_change(
    client: httpx.AsyncClient, as_role: dict[str, dict[str, str]]
) -> None:
    viewer = as_role["viewer"]
    created = (await client.post("/api/v1/boards", json=board())).json()
    assert (await client.get("/api/v1/boards", headers=viewer)).status_code == 200
    assert (await client.get(created["url"], headers=viewer)).status_code == 200
    assert (await client.get("/api/v1/statuses", headers=viewer)).status_code == 200
    for method, url, body in (
        ("POST", "/api/v1/boards", board()),
        ("PATCH", created["url"], {"description": "x"}),
        ("DELETE", created["url"], None),
    ):
        r = await client.request(method, url, json=body, headers=viewer)
        assert r.status_code == 403, (method, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert "admin" in r.json()["detail"]
    assert (await client.get(created["url"])).json() == created


@pytest.mark.parametrize(("path", "factory", "unique"), COLLECTIONS, ids=[c[0] for c in COLLECTIONS])
async def test_inventory_changes_need_admin(
    client: httpx.AsyncClient,
    as_role: dict[str, dict[str, str]],
    path: str,
    factory,
    unique,  # type: ignore[no-untyped-def]
) -> None:
    for role in ("viewer", "operator"):
        r = await client.post(f"/api/v1/{path}", json=factory(), headers=as_role[role])
        assert r.status_code == 403
    r = await client.post(f"/api/v1/{path}", json=factory(), headers=as_role["admin"])
    assert r.status_code == 201


@pytest.mark.parametrize("path", ["/api/v1/tokens", "/api/v1/audit-log"])
async def test_tokens_and_audit_are_admin_only(
    client: httpx.AsyncClient, as_role: dict[str, dict[str, str]], path: str
) -> None:
    assert (await client.get(path, headers=as_role["viewer"])).status_code == 403
    assert (await client.get(path, headers=as_role["operator"])).status_code == 403
    assert (await client.get(path, headers=as_role["admin"])).status_code == 200


async def test_revoked_and_expired_tokens_are_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    _, revoked = await tokens.create(session=session, actor=SYSTEM, name="gone", role=Role.admin)
    await tokens.revoke(session=session, actor=SYSTEM, name_or_id="gone")
    _, expired = await tokens.create(
        session=session, actor=SYSTEM, name="old", role=Role.admin, expires_at=utcnow() - timedelta(seconds=1)
    )
    await session.commit()
    for token, reason in ((revoked, "revoked"), (expired, "expired")):
        r = await client.get("/api/v1/boards", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401
        assert reason in r.json()["detail"]


async def test_token_api_creates_lists_and_revokes(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/tokens", json={"name": "ci-bot", "role": "operator", "team": "kernel"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["token"].startswith("lf_")
    assert made["role"] == "operator"
    assert made["team"] == "kernel"
    bot = {"Authorization": f"Bearer {made['token']}"}
    assert (await client.get("/api/v1/boards", headers=bot)).status_code == 200

    listed = (await client.get("/api/v1/tokens")).json()
    assert "ci-bot" in [t["name"] for t in listed["items"]]
    assert "token" not in listed["items"][0]
    assert made["token"] not in str(listed)

    assert (await client.post("/api/v1/tokens", json={"name": "ci-bot", "role": "viewer"})).status_code == 409
    bad = await client.post("/api/v1/tokens", json={"name": "x", "role": "root"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "role"

    assert (await client.delete(f"/api/v1/tokens/{made['id']}")).status_code == 204
    assert (await client.get("/api/v1/boards", headers=bot)).status_code == 401
    assert (await client.delete("/api/v1/tokens/99999")).status_code == 404


async def test_tokens_are_stored_only_as_hashes(client: httpx.AsyncClient, session: AsyncSession) -> None:
    made = (await client.post("/api/v1/tokens", json={"name": "hashed", "role": "viewer"})).json()
    row = await tokens.repo.by_name(session, "hashed")
    assert row is not None
    assert made["token"] not in (row.token_hash, row.prefix)
    assert len(row.token_hash) == 64


@pytest.mark.parametrize(("path", "factory", "unique"), COLLECTIONS, ids=[c[0] for c in COLLECTIONS])
@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_every_inventory_write_is_refused_below_admin(
    client: httpx.AsyncClient,
    as_role: dict[str, dict[str, str]],
    path: str,
    factory,  # type: ignore[no-untyped-def]
    unique: tuple[str, ...],
    role: str,
) -> None:
    created = (await client.post(f"/api/v1/{path}", json=factory())).json()
    for method, url, body in (
        ("POST", f"/api/v1/{path}", factory()),
        ("PATCH", created["url"], {"description": "x"}),
        ("DELETE", created["url"], None),
    ):
        r = await client.request(method, url, json=body, headers=as_role[role])
        assert r.status_code == 403, (method, r.text)
    assert (await client.get(created["url"], headers=as_role[role])).json() == created


async def test_token_and_audit_parameters_are_validated(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/audit-log", params={"limit": 0})
    assert r.status_code == 422 and r.json()["field"] == "limit"
    r = await client.post("/api/v1/tokens", json={"name": "", "role": "viewer"})
    assert r.status_code == 422 and r.json()["field"] == "name"
