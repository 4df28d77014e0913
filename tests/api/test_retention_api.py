"""What retention leaves behind, through the API: a pruned log answers 410 saying when; the
audit log is exported as JSON lines, for admins, bounded by time.

Validates: audit log (R15), retention (R8.4)
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import AuditEntry
from tests.db.build_rows import build_job


async def test_a_pruned_log_is_gone_and_says_when(client: httpx.AsyncClient, session: AsyncSession) -> None:
    job = await build_job(session, log_size=120, logs_pruned_at=utcnow())
    ident = job.id
    await session.commit()
    r = await client.get(f"/api/v1/build-jobs/{ident}/logs")
    assert r.status_code == 410, r.text
    assert f"build {ident}'s log (120 bytes) was removed by retention at" in r.json()["detail"]


async def test_the_audit_log_exports_as_json_lines_for_admins(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    now = utcnow()
    for n in range(3):
        session.add(
            AuditEntry(
                actor="alice", action="update", object_type="board", object_id=n, at=now - timedelta(days=n)
            )
        )
    await session.commit()
    r = await client.get("/api/v1/audit-log/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    mine = [e for e in lines if e["actor"] == "alice"]
    assert [e["object_id"] for e in mine] == [0, 1, 2]  # by id, oldest written first
    since = (now - timedelta(hours=36)).isoformat()
    bounded = await client.get("/api/v1/audit-log/export", params={"since": since})
    assert sorted(json.loads(x)["object_id"] for x in bounded.text.splitlines() if "alice" in x) == [0, 1]
    bad = await client.get("/api/v1/audit-log/export", params={"since": now.isoformat(), "before": since})
    assert (bad.status_code, bad.json()["field"]) == (422, "since")
    assert (await client.get("/api/v1/audit-log/export", headers=as_role["operator"])).status_code == 403
