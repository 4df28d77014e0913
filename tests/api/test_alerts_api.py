"""Alerts people can see and act on: list, filter, acknowledge, resolve, all audited (R16).

Validates: 16.2, 16.3
"""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AlertEvent, AuditEntry
from labfleet.services.core import alerts as raising
from tests.api.test_reservations_api import add_host


async def _raise(session: AsyncSession, host_id: int, kind: str, severity: str = "critical") -> int:
    alert = await raising.raise_alert(
        session=session,
        resource_kind="host",
        resource_id=host_id,
        kind=kind,
        severity=severity,
        message=f"host {host_id}: {kind}",
    )
    await session.commit()
    return alert.id


async def test_alerts_are_listed_by_state_severity_and_resource_and_a_repeat_is_counted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    one, two = await add_host(session, "kvm-1"), await add_host(session, "kvm-2")
    down = await _raise(session, one, "unreachable")
    assert await _raise(session, one, "unreachable") == down  # a repeat, not a second alert
    await _raise(session, two, "disk_low", severity="warning")

    everything = (await client.get("/api/v1/alerts")).json()
    assert everything["count"] == 2
    assert [a["kind"] for a in everything["items"]] == ["disk_low", "unreachable"]  # newest first
    assert everything["items"][1]["occurrences"] == 2

    critical = (await client.get("/api/v1/alerts", params={"severity": "critical"})).json()
    assert [a["id"] for a in critical["items"]] == [down]
    of_two = (await client.get("/api/v1/alerts", params={"resource_kind": "host", "resource_id": two})).json()
    assert [a["kind"] for a in of_two["items"]] == ["disk_low"]
    paged = (await client.get("/api/v1/alerts", params={"limit": 1, "offset": 1})).json()
    assert (paged["count"], [a["id"] for a in paged["items"]]) == (2, [down])

    bad = await client.get("/api/v1/alerts", params={"severity": "loud"})
    assert bad.status_code == 422
    assert "severity" in bad.text


async def test_acknowledge_then_resolve_records_who_when_and_why(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    host_id = await add_host(session)
    ident = await _raise(session, host_id, "unreachable")

    refused = await client.post(f"/api/v1/alerts/{ident}/acknowledge", headers=as_role["viewer"])
    assert refused.status_code == 403
    assert (await client.get(f"/api/v1/alerts/{ident}", headers=as_role["viewer"])).json()["state"] == "open"

    acked = await client.post(f"/api/v1/alerts/{ident}/acknowledge", json={"comment": "on it: PSU swap"})
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["state"], body["acknowledged_comment"]) == ("acknowledged", "on it: PSU swap")
    assert body["acknowledged_by"] and body["acknowledged_at"]

    again = await client.post(f"/api/v1/alerts/{ident}/acknowledge")
    assert again.status_code == 409
    assert "already acknowledged" in again.json()["detail"]

    # Still the one unresolved alert: a repeat while acknowledged bumps it, makes no second one.
    assert await _raise(session, host_id, "unreachable") == ident

    done = (await client.post(f"/api/v1/alerts/{ident}/resolve", json={"comment": "PSU replaced"})).json()
    assert (done["state"], done["resolved_comment"]) == ("resolved", "PSU replaced")
    assert (await client.post(f"/api/v1/alerts/{ident}/resolve")).status_code == 409

    # The condition seen again after a person resolved it is a new alert.
    assert await _raise(session, host_id, "unreachable") != ident

    session.expire_all()
    entries = (
        await session.scalars(
            select(AuditEntry).where(AuditEntry.object_type == "alert").order_by(AuditEntry.id)
        )
    ).all()
    assert [(e.action, e.object_id, (e.after or {}).get("comment")) for e in entries] == [
        ("acknowledge", ident, "on it: PSU swap"),
        ("resolve", ident, "PSU replaced"),
    ]
    # Each change is in the outbox with it, to be told to the channels; the repeats are not.
    told = await session.scalars(
        select(AlertEvent).where(AlertEvent.alert_id == ident).order_by(AlertEvent.id)
    )
    assert [(e.event, e.actor, e.comment) for e in told] == [
        ("raised", None, None),
        ("acknowledged", "t-admin", "on it: PSU swap"),
        ("resolved", "t-admin", "PSU replaced"),
    ]


async def test_an_unknown_alert_is_a_404_and_a_long_comment_a_422(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    assert (await client.post("/api/v1/alerts/999/acknowledge")).status_code == 404
    ident = await _raise(session, await add_host(session), "unreachable")
    long = await client.post(f"/api/v1/alerts/{ident}/acknowledge", json={"comment": "x" * 2001})
    assert long.status_code == 422
    assert "comment" in long.text
    assert (await client.get(f"/api/v1/alerts/{ident}")).json()["state"] == "open"
