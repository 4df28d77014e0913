"""Notification channels through the API: admins set them up, secrets go in and never come
out, a channel that cannot work is refused naming the field, and the delivery log is there
for operators.

Validates: 16.5
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.services.core import alerts
from labfleet.services.notifications import delivery
from tests.helpers import free_port
from tests.notify_rig import mail_target, smtp
from tests.receivers import Smtp

__all__ = ["smtp"]  # the fixture

PATH = "/api/v1/notification-channels"
HOOK = {
    "transport": "webhook",
    "url": "https://hooks.lab.example/labfleet",
    "secret": "s3cret-signing-key-0123",
}


async def test_a_channel_keeps_its_secrets_and_only_admins_change_it(
    client: httpx.AsyncClient, as_role: dict[str, dict[str, str]], smtp: Smtp
) -> None:
    made = await client.post(PATH, json={"name": "ops-hook", "target": HOOK, "min_severity": "critical"})
    assert made.status_code == 201, made.text
    assert "s3cret-signing-key" not in made.text
    body = made.json()
    assert body["target"] == {"url": "https://hooks.lab.example/labfleet", "has_secret": True}
    assert (body["min_severity"], body["failing"], body["events"]) == ("critical", False, [])

    mail = await client.post(
        PATH, json={"name": "oncall-mail", "target": mail_target(smtp), "events": ["raised"]}
    )
    assert mail.status_code == 201, mail.text
    assert smtp.password not in mail.text
    assert mail.json()["target"]["has_password"] is True

    assert (await client.post(PATH, json={"name": "ops-hook", "target": HOOK})).status_code == 409
    assert (
        await client.post(PATH, json={"name": "x", "target": HOOK}, headers=as_role["operator"])
    ).status_code == 403
    assert (await client.get(PATH, headers=as_role["viewer"])).status_code == 403
    listed = await client.get(PATH, headers=as_role["operator"])
    assert [c["name"] for c in listed.json()["items"]] == ["oncall-mail", "ops-hook"]

    ident = body["id"]
    changed = await client.patch(f"{PATH}/{ident}", json={"enabled": False, "resource_kinds": ["board"]})
    assert (changed.json()["enabled"], changed.json()["resource_kinds"]) == (False, ["board"])
    assert (await client.delete(f"{PATH}/{ident}")).status_code == 204
    assert (await client.get(f"{PATH}/{ident}")).status_code == 404


@pytest.mark.parametrize(
    ("target", "field", "reason"),
    [
        ({**HOOK, "url": "not a url"}, "target.webhook.url", "URL"),
        ({**HOOK, "url": "ftp://hooks.lab.example/x"}, "target.webhook.url", "scheme"),
        (
            {**HOOK, "url": "https://user:pw@hooks.lab.example/x"},
            "target.webhook.url",
            "user name or password",
        ),
        ({**HOOK, "secret": "short"}, "target.webhook.secret", "at least 16"),
        (
            {"transport": "apprise", "urls": ["nosuchservice://abc"]},
            "target.apprise.urls.0",
            "no Apprise service",
        ),
        ({"transport": "pager"}, "target", "transport"),
    ],
)
async def test_a_channel_that_cannot_work_is_refused_naming_the_field(
    client: httpx.AsyncClient, target: dict[str, object], field: str, reason: str
) -> None:
    refused = await client.post(PATH, json={"name": "bad", "target": target})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["field"] == field, problem
    assert reason in problem["detail"] or any(reason in e["reason"] for e in problem["errors"]), problem
    assert (await client.get(PATH)).json()["count"] == 0


async def test_an_smtp_server_that_cannot_be_used_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, smtp: Smtp
) -> None:
    closed = free_port()
    for target, field, said in (
        (mail_target(smtp, port=closed), "target.email.host", f"cannot reach SMTP server 127.0.0.1:{closed}"),
        (
            mail_target(smtp, password="not-the-password"),
            "target.email.username",
            "refused the login of 'labfleet'",
        ),
    ):
        refused = await client.post(PATH, json={"name": "mail", "target": target})
        assert refused.status_code == 422, refused.text
        assert (refused.json()["field"], said in refused.json()["detail"]) == (field, True)
        assert "not-the-password" not in refused.text
    assert (await client.get(PATH)).json()["count"] == 0


async def test_the_delivery_log_shows_each_channel_s_deliveries(
    client: httpx.AsyncClient, session: AsyncSession, as_role: dict[str, dict[str, str]]
) -> None:
    channel = (await client.post(PATH, json={"name": "ops-hook", "target": HOOK})).json()
    alert = await alerts.raise_alert(
        session=session,
        resource_kind="board",
        resource_id=4,
        kind="boot_failed",
        severity="critical",
        message="m",
    )
    alert_id = alert.id
    [event] = await delivery.publish_due(session, now=datetime.now(UTC))
    event_id = event.id
    await session.commit()

    listed = await client.get("/api/v1/notification-deliveries", params={"channel_id": channel["id"]})
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["event"], item["alert_id"], item["state"], item["channel"]) == (
        "raised",
        alert_id,
        "pending",
        "ops-hook",
    )
    assert item["idempotency_key"] == f"{event_id}:{channel['id']}"
    shown = await client.get(f"/api/v1/notification-deliveries/{item['id']}", headers=as_role["operator"])
    assert shown.json()["log"] == []
    assert (await client.get("/api/v1/notification-deliveries/999999")).status_code == 404
    assert (await client.get("/api/v1/notification-deliveries", headers=as_role["viewer"])).status_code == 403
    bad = await client.get("/api/v1/notification-deliveries", params={"state": "lost"})
    assert (bad.status_code, bad.json()["field"]) == (422, "state")
