"""Secrets are encrypted at rest and never returned or logged; every change is audited."""

from __future__ import annotations

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry, Board, Host
from labfleet.secretbox import SecretBox
from tests.factories import board, host


async def _all_text(session: AsyncSession, table: str) -> str:
    rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
    return repr(rows)


async def test_credentials_are_sealed_at_rest(
    client: httpx.AsyncClient, session: AsyncSession, secrets: SecretBox
) -> None:
    # Validates: 1.5
    created = (await client.post("/api/v1/hosts", json=host())).json()
    stored = await _all_text(session, "hosts")
    assert "hunter2-secret" not in stored
    row = await session.get(Host, created["id"])
    assert row is not None
    assert row.ssh_secret is not None
    assert secrets.open(row.ssh_secret) == {"password": "hunter2-secret"}
    assert created["ssh"]["credentials_set"] is True


async def test_updating_one_credential_keeps_the_other(
    client: httpx.AsyncClient, session: AsyncSession, secrets: SecretBox
) -> None:
    created = (await client.post("/api/v1/hosts", json=host())).json()
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----"
    r = await client.patch(created["url"], json={"ssh": {"private_key": key}})
    assert r.status_code == 200
    row = await session.get(Host, created["id"], populate_existing=True)
    assert row is not None
    assert row.ssh_secret is not None
    assert secrets.open(row.ssh_secret) == {"password": "hunter2-secret", "private_key": key + "\n"}
    assert "BEGIN" not in r.text


async def test_power_credentials_are_sealed_and_never_returned(
    client: httpx.AsyncClient, session: AsyncSession, secrets: SecretBox
) -> None:
    r = await client.post("/api/v1/boards", json=board())
    body = r.json()
    assert "pdu-secret-pw" not in r.text
    assert body["power"]["secret_set"] is True
    assert body["power"]["params"]["pdu"] == "pdu-1"
    row = await session.get(Board, body["id"])
    assert row is not None
    assert row.power_secret is not None
    assert secrets.open(row.power_secret)["password"] == "pdu-secret-pw"
    assert "pdu-secret-pw" not in await _all_text(session, "boards")


async def test_every_change_is_audited_with_secrets_redacted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    created = (await client.post("/api/v1/hosts", json=host())).json()
    await client.patch(created["url"], json={"ssh": {"password": "new-secret-pw"}, "description": "d"})
    await client.delete(created["url"])
    entries = list(
        await session.scalars(
            select(AuditEntry).where(AuditEntry.object_id == created["id"], AuditEntry.object_type == "host")
        )
    )
    assert [e.action for e in entries] == ["create", "update", "delete"]
    assert all(e.actor == "t-admin" and e.token_id is not None for e in entries)
    update = entries[1]
    assert update.before is not None
    assert update.after is not None
    assert update.before["description"] == ""
    assert update.after["description"] == "d"
    log = await _all_text(session, "audit_log")
    for secret in ("hunter2-secret", "new-secret-pw"):
        assert secret not in log


async def test_a_failed_request_writes_no_audit_row(client: httpx.AsyncClient, session: AsyncSession) -> None:
    first = host()
    await client.post("/api/v1/hosts", json=first)
    before = len(list(await session.scalars(select(AuditEntry))))
    r = await client.post("/api/v1/hosts", json=host(hostname=first["hostname"]))
    assert r.status_code == 409
    assert len(list(await session.scalars(select(AuditEntry)))) == before
