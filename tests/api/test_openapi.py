"""The OpenAPI document is complete: every route, its auth, its problem responses."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from labfleet.api.routes.statuses import WORK_STATUSES
from labfleet.schemas.common import StatusOut

COLLECTIONS = ("build-servers", "hosts", "boards")
EXPECTED = (
    {("get", f"/api/v1/{c}") for c in COLLECTIONS}
    | {("post", f"/api/v1/{c}") for c in COLLECTIONS}
    | {(m, f"/api/v1/{c}/{{id}}") for c in COLLECTIONS for m in ("get", "patch", "delete")}
    | {
        ("get", "/api/v1/tokens"),
        ("post", "/api/v1/tokens"),
        ("delete", "/api/v1/tokens/{id}"),
        ("get", "/api/v1/audit-log"),
        ("get", "/api/v1/alerts"),
        ("get", "/api/v1/alerts/{id}"),
        ("post", "/api/v1/alerts/{id}/acknowledge"),
        ("post", "/api/v1/alerts/{id}/resolve"),
        ("get", "/api/v1/notification-channels"),
        ("post", "/api/v1/notification-channels"),
        ("get", "/api/v1/notification-channels/{id}"),
        ("patch", "/api/v1/notification-channels/{id}"),
        ("delete", "/api/v1/notification-channels/{id}"),
        ("get", "/api/v1/notification-deliveries"),
        ("get", "/api/v1/notification-deliveries/{id}"),
        ("get", "/api/v1/settings"),
        ("put", "/api/v1/settings"),
        ("get", "/metrics"),
        ("get", "/api/v1/audit-log/export"),
        ("get", "/api/v1/build-servers/{id}/health"),
        ("get", "/api/v1/hosts/{id}/health"),
        ("get", "/api/v1/boards/{id}/health"),
        ("get", "/api/v1/hosts/{id}/capacity"),
        ("get", "/api/v1/hosts/{id}/vms"),
        ("get", "/api/v1/build-servers/{id}/capacity"),
        ("get", "/api/v1/statuses"),
        ("get", "/api/v1/artifacts"),
        ("get", "/api/v1/artifacts/latest"),
        ("post", "/api/v1/artifacts/retention"),
        ("get", "/api/v1/artifacts/{id}"),
        ("get", "/api/v1/artifacts/{id}/download"),
        ("post", "/api/v1/artifacts/{id}/pin"),
        ("delete", "/api/v1/artifacts/{id}/pin"),
        ("put", "/api/v1/build-servers/{id}/status"),
        ("put", "/api/v1/hosts/{id}/status"),
        ("put", "/api/v1/boards/{id}/status"),
        ("get", "/api/v1/reservations"),
        ("post", "/api/v1/reservations"),
        ("get", "/api/v1/reservations/{id}"),
        ("post", "/api/v1/reservations/{id}/extend"),
        ("post", "/api/v1/reservations/{id}/release"),
        ("get", "/api/v1/pipelines"),
        ("post", "/api/v1/pipelines"),
        ("get", "/api/v1/pipelines/stats"),
        ("get", "/api/v1/pipelines/{id}"),
        ("post", "/api/v1/pipelines/{id}/cancel"),
        ("post", "/api/v1/pipelines/{id}/retry"),
        ("get", "/api/v1/pipelines/{id}/logs"),
        ("get", "/api/v1/environments"),
        ("post", "/api/v1/environments"),
        ("get", "/api/v1/environments/{id}"),
        ("post", "/api/v1/environments/{id}/release"),
        ("get", "/api/v1/build-jobs"),
        ("post", "/api/v1/build-jobs"),
        ("get", "/api/v1/build-jobs/{id}"),
        ("post", "/api/v1/build-jobs/{id}/cancel"),
        ("post", "/api/v1/build-jobs/{id}/retry"),
        ("get", "/api/v1/build-jobs/{id}/logs"),
        ("get", "/api/v1/boards/{id}/power"),
        ("put", "/api/v1/boards/{id}/power"),
        ("post", "/api/v1/boards/{id}/power-cycle"),
        ("get", "/api/v1/boards/{id}/power-actions"),
        ("get", "/api/v1/boards/{id}/power-actions/{action_id}"),
        ("post", "/api/v1/boards/{id}/flash"),
        ("get", "/api/v1/boards/{id}/flash-jobs"),
        ("get", "/api/v1/flash-jobs/{id}"),
    }
)


async def test_openapi_lists_every_route_with_auth_and_problems(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    r = await client.get("/api/v1/openapi.json", headers={"Authorization": ""})
    assert r.status_code == 200
    spec = r.json()
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == EXPECTED
    ids = set()
    for method, path in documented:
        op = spec["paths"][path][method]
        ids.add(op["operationId"])
        assert op.get("security") == [{"HTTPBearer": []}], (method, path)
        for code in ("401", "403", "422"):
            content = op["responses"][code]["content"]
            assert list(content) == ["application/problem+json"], (method, path, code)
        assert op["summary"]
    assert len(ids) == len(documented)
    assert "Problem" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in r.text


async def test_statuses_come_from_the_status_tables_and_the_work_status_enums(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/api/v1/statuses")).json()
    assert set(body) == {"build_server", "host", "board", "build_job", *WORK_STATUSES}
    for kind, enum in WORK_STATUSES.items():
        assert body[kind] == [StatusOut.of(s).model_dump() for s in enum]
    assert [s["value"] for s in body["build_job"]] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    ]
    assert [s["value"] for s in body["build_server"]] == [
        "online",
        "degraded",
        "offline",
        "maintenance",
        "decommissioned",
    ]
    assert "flashing" in [s["value"] for s in body["board"]]
    assert all(s["label"] and s["colour"] for rows in body.values() for s in rows)
