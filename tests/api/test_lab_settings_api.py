"""The lab's settings through the API: read by anyone, changed whole by admins, audited;
bad values name the field and change nothing; a stale ETag is refused.

Validates: 2.1, 9.1, 10.1, 16.1 (the settings of seed task 17.10)
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry
from tests.api.test_reservations_api import add_host

PATH = "/api/v1/settings"


async def test_the_defaults_then_a_change_that_every_reader_sees(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    first = await client.get(PATH, headers=as_role["viewer"])
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"0"'
    body = first.json()
    assert (body["version"], body["updated_by"]) == (0, None)
    assert body["check_interval_seconds"] == {"build_server": 60.0, "host": 60.0, "board": 60.0}
    assert body["thresholds"]["build_server"] == {
        "failure_limit": 3,
        "disk_warning_gb": 50.0,
        "disk_critical_gb": 10.0,
    }

    host = await add_host(session, "kvm-9")
    wanted = {
        "check_interval_seconds": {"board": 30},
        "thresholds": {"board": {"temperature_warning_c": 70}},
        "overrides": [{"resource_kind": "host", "resource_id": host, "failure_limit": 5}],
        "artifact_retention": {"keep_last": 3, "max_age_days": 30},
    }
    refused = await client.put(PATH, json=wanted, headers=as_role["operator"])
    assert refused.status_code == 403
    changed = await client.put(PATH, json=wanted, headers={"If-Match": '"0"'})
    assert changed.status_code == 200, changed.text
    assert changed.headers["ETag"] == '"1"'
    now = (await client.get(PATH)).json()
    assert (now["version"], now["updated_by"]) == (1, "t-admin")
    assert now["check_interval_seconds"] == {"build_server": 60.0, "host": 60.0, "board": 30.0}
    assert now["thresholds"]["board"]["temperature_warning_c"] == 70
    assert now["overrides"][0]["failure_limit"] == 5
    assert now["artifact_retention"] == {"keep_last": 3, "max_age_days": 30}

    stale = await client.put(PATH, json={}, headers={"If-Match": '"0"'})
    assert stale.status_code == 409
    assert "changed since version 0 (now 1, by t-admin)" in stale.json()["detail"]
    garbage = await client.put(PATH, json={}, headers={"If-Match": "yesterday"})
    assert (garbage.status_code, garbage.json()["field"]) == (422, "If-Match")

    [entry] = await session.scalars(select(AuditEntry).where(AuditEntry.object_type == "settings"))
    assert entry.action == "update"
    assert set(entry.after or {}) == {
        "check_interval_seconds",
        "thresholds",
        "overrides",
        "artifact_retention",
    }
    assert (entry.before or {})["artifact_retention"] == {"keep_last": 10, "max_age_days": None}


@pytest.mark.parametrize(
    ("document", "field", "reason"),
    [
        (
            {"thresholds": {"host": {"failure_limit": 0}}},
            "thresholds.host.failure_limit",
            "greater than or equal to 1",
        ),
        ({"check_interval_seconds": {"board": -5}}, "check_interval_seconds.board", "greater than or equal"),
        (
            {"thresholds": {"build_server": {"disk_warning_gb": 5, "disk_critical_gb": 20}}},
            "thresholds.build_server",
            "disk_critical_gb (20) must not be above disk_warning_gb (5)",
        ),
        (
            {"thresholds": {"host": {"failure_limit": 20}}},
            "thresholds.host.failure_limit",
            "beyond alert_time_limit_seconds (600)",
        ),
        ({"history_retention": {"raw_days": 100}}, "history_retention", "raw_days (100) must not be above"),
        (
            {"artifact_retention": {"keep_last": 0}},
            "artifact_retention.keep_last",
            "greater than or equal to 1",
        ),
        (
            {"overrides": [{"resource_kind": "host", "resource_id": 999999, "failure_limit": 2}]},
            "overrides.0.resource_id",
            "does not exist",
        ),
        (
            {"overrides": [{"resource_kind": "host", "resource_id": 1, "disk_warning_gb": 2}]},
            "overrides.0",
            "no threshold disk_warning_gb",
        ),
        ({"check_interval_second": {"board": 5}}, "check_interval_second", "Extra inputs are not permitted"),
    ],
)
async def test_a_bad_value_names_the_field_and_changes_nothing(
    client: httpx.AsyncClient, document: dict[str, object], field: str, reason: str
) -> None:
    refused = await client.put(PATH, json=document)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["field"] == field, problem
    assert reason in problem["detail"], problem
    assert (await client.get(PATH)).json()["version"] == 0
