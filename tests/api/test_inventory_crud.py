"""Create, list, get, update and delete of every inventory collection.

Validates: 1.1, 1.4, 1.5, 7.1, 7.4, 8.1, 8.4, 8.5
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.factories import COLLECTIONS

PROBLEM = "application/problem+json"

pytestmark = pytest.mark.parametrize(
    ("path", "factory", "unique"), COLLECTIONS, ids=[c[0] for c in COLLECTIONS]
)


async def count(client: httpx.AsyncClient, path: str) -> int:
    r = await client.get(f"/api/v1/{path}")
    assert r.status_code == 200
    return int(r.json()["count"])


async def test_create_returns_the_member_with_location_and_no_secret(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    payload = factory()
    r = await client.post(f"/api/v1/{path}", json=payload)
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == body["url"] == f"http://lab/api/v1/{path}/{body['id']}"
    for field in unique:
        assert body[field] == payload[field]
    assert body["labels"] == payload["labels"]
    assert body["status"]["value"] == "online"
    assert {"label", "colour"} <= body["status"].keys()
    for secret in ("PRIVATE KEY", "hunter2-secret", "pdu-secret-pw"):
        assert secret not in r.text
    got = await client.get(body["url"])
    assert got.json() == body


async def test_get_unknown_is_404_problem(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    r = await client.get(f"/api/v1/{path}/999999")
    assert r.status_code == 404
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["status"] == 404
    assert problem["field"] == "id"
    assert "999999" in problem["detail"]


@pytest.mark.parametrize("which", [0, 1])
async def test_duplicate_is_409_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient,
    path: str,
    factory: Callable[..., dict[str, Any]],
    unique: tuple[str, ...],
    which: int,
) -> None:
    first = factory()
    assert (await client.post(f"/api/v1/{path}", json=first)).status_code == 201
    before = await count(client, path)
    field = unique[which]
    r = await client.post(f"/api/v1/{path}", json=factory(**{field: first[field]}))
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["field"] == field
    assert await count(client, path) == before


async def test_invalid_input_is_422_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    before = await count(client, path)
    payload = factory()
    if "ssh" in payload:
        payload["ssh"]["port"] = 70000
        expected = "ssh.port"
    else:
        payload["console_url"] = "http://not-a-console"
        expected = "console_url"
    r = await client.post(f"/api/v1/{path}", json=payload)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["field"] == expected
    assert problem["errors"][0]["reason"]
    assert await count(client, path) == before


async def test_unknown_field_is_rejected(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    r = await client.post(f"/api/v1/{path}", json=factory(colour="blue"))
    assert r.status_code == 422
    assert r.json()["field"] == "colour"


async def test_update_changes_fields_and_replaces_labels(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    created = (await client.post(f"/api/v1/{path}", json=factory())).json()
    r = await client.patch(created["url"], json={"description": "moved to rack 9", "labels": {"rack": "r9"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["description"] == "moved to rack 9"
    assert body["labels"] == {"rack": "r9"}
    assert body[unique[0]] == created[unique[0]]
    assert (await client.get(created["url"])).json()["labels"] == {"rack": "r9"}


async def test_update_to_a_taken_value_is_409_and_changes_nothing(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    a = (await client.post(f"/api/v1/{path}", json=factory())).json()
    b = (await client.post(f"/api/v1/{path}", json=factory())).json()
    field = unique[0]
    r = await client.patch(b["url"], json={field: a[field], "description": "should not stick"})
    assert r.status_code == 409
    assert r.json()["field"] == field
    assert (await client.get(b["url"])).json() == b


async def test_update_unknown_is_404(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    r = await client.patch(f"/api/v1/{path}/424242", json={"description": "x"})
    assert r.status_code == 404


async def test_delete_removes_and_is_audited(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    created = (await client.post(f"/api/v1/{path}", json=factory())).json()
    r = await client.delete(created["url"])
    assert r.status_code == 204
    assert (await client.get(created["url"])).status_code == 404
    assert (await client.delete(created["url"])).status_code == 404
    log = (await client.get("/api/v1/audit-log", params={"object_id": created["id"]})).json()["items"]
    actions = [e["action"] for e in log if e["object_type"] == path.rstrip("s").replace("-", "_")]
    assert actions == ["delete", "create"]
    assert log[0]["actor"] == "t-admin"
    assert log[0]["before"][unique[0]] == created[unique[0]]


async def test_list_pages_filters_and_sorts(
    client: httpx.AsyncClient, path: str, factory: Callable[..., dict[str, Any]], unique: tuple[str, ...]
) -> None:
    made = []
    for i in range(5):
        r = await client.post(
            f"/api/v1/{path}", json=factory(labels={"pool": "even" if i % 2 == 0 else "odd"})
        )
        made.append(r.json())
    page = (await client.get(f"/api/v1/{path}", params={"limit": 2, "offset": 1, "sort": "id"})).json()
    assert page["count"] == 5
    assert [i["id"] for i in page["items"]] == [made[1]["id"], made[2]["id"]]

    even = (await client.get(f"/api/v1/{path}", params={"label": "pool=even"})).json()
    assert {i["id"] for i in even["items"]} == {made[0]["id"], made[2]["id"], made[4]["id"]}
    assert even["count"] == 3
    both = (await client.get(f"/api/v1/{path}", params=[("label", "pool"), ("label", "pool=odd")])).json()
    assert both["count"] == 2

    desc = (await client.get(f"/api/v1/{path}", params={"sort": f"-{unique[0]}"})).json()["items"]
    keys = [i[unique[0]] for i in desc]
    assert keys == sorted(keys, reverse=True)

    online = (await client.get(f"/api/v1/{path}", params={"status": "online"})).json()
    assert online["count"] == 5
    offline = (await client.get(f"/api/v1/{path}", params={"status": "offline"})).json()
    assert offline == {"count": 0, "items": []}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "password"}, "sort"),
        ({"label": "Not A Key"}, "label"),
        ({"status": "exploded"}, "status.0"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
    ],
)
async def test_bad_list_parameters_are_422_naming_them(
    client: httpx.AsyncClient,
    path: str,
    factory: Callable[..., dict[str, Any]],
    unique: tuple[str, ...],
    params: dict[str, Any],
    field: str,
) -> None:
    r = await client.get(f"/api/v1/{path}", params=params)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["field"] == field
