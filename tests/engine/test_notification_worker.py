"""The notification worker against real receivers: alert changes reach an SMTP server
(STARTTLS and a login) and a webhook receiver that checks signatures, filtered per channel;
a receiver that answers 500 is retried, one that never recovers is marked failing with an
alert of its own, and comes back once it delivers again.

Validates: 16.5
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert, NotificationChannel, NotificationDelivery
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.notifications import ChannelUpdate
from labfleet.schemas.query import ListQuery
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.notifications import channels, log
from tests.helpers import free_port
from tests.notify_rig import (
    SECRET,
    Sessions,
    add,
    deliveries,
    hook_channel,
    host_alert,
    mail_channel,
    sessions,
    smtp,
    until,
    worker,
)
from tests.receivers import Hook, Smtp

__all__ = ["sessions", "smtp"]  # fixtures


async def test_alert_changes_reach_mail_and_signed_webhooks_as_each_channel_filters(
    sessions: Sessions, smtp: Smtp
) -> None:
    box, bus = SecretBox(Fernet.generate_key()), EventBus()
    first_mail = len(smtp.mailbox.messages)
    with Hook(SECRET) as hook, Hook(SECRET) as boards_hook:
        mail, web, _ = await add(
            sessions,
            box,
            mail_channel(smtp, min_severity="critical"),
            hook_channel("ops-hook", hook.url, min_severity="info"),
            hook_channel("boards-hook", boards_hook.url, resource_kinds=["board"]),
        )
        heard = bus.subscribe(["alerts"])
        async with worker(sessions, box, bus):
            warned = await host_alert(sessions, "disk_low", severity="warning")
            assert await host_alert(sessions, "disk_low", severity="warning") == warned  # a repeat: no news
            await host_alert(sessions, "disk_low", severity="critical")  # worse: news
            await host_alert(sessions, "disk_low", resolve=True)
            got = await hook.wait(3)
            mails = (await smtp.mailbox.wait(first_mail + 2))[first_mail:]
            done = await until(sessions, lambda s: _all_delivered(s, 5))
        events = [(await heard.get(5)) for _ in range(3)]

    assert [json.loads(r.body)["event"] for r in got] == ["raised", "escalated", "resolved"]
    assert all(r.signed for r in got)
    keys = [r.headers["Idempotency-Key"] for r in got]
    assert len(set(keys)) == 3 and all(k.endswith(f":{web}") for k in keys)
    # The mail channel wants critical only: the escalation and the resolution (at critical).
    assert [m["Subject"].split(":")[0] for m in mails] == [
        "[labfleet] CRITICAL escalated",
        "[labfleet] CRITICAL resolved",
    ]
    assert {d.channel_id for d in done} == {mail, web}  # never the boards-only channel
    assert boards_hook.received == []
    assert [e.data["event"] for e in events if e is not None] == ["raised", "escalated", "resolved"]
    assert all(e is not None and e.data["alert_id"] == warned for e in events)


async def _all_delivered(session: AsyncSession, count: int) -> list[NotificationDelivery] | None:
    rows = await deliveries(session)
    return rows if len(rows) == count and all(r.state == "delivered" for r in rows) else None


async def test_a_500_is_retried_and_a_receiver_that_never_answers_marks_its_channel_failing(
    sessions: Sessions, smtp: Smtp
) -> None:
    box, bus = SecretBox(Fernet.generate_key()), EventBus()
    first_mail = len(smtp.mailbox.messages)
    dead_url = f"http://127.0.0.1:{free_port()}/hook"
    with Hook(SECRET, answers=[500, 500]) as flaky, Hook(SECRET) as later:
        _, flaky_id, dead = await add(
            sessions,
            box,
            mail_channel(smtp),
            hook_channel("flaky", flaky.url),
            hook_channel("dead", dead_url),
        )
        async with worker(sessions, box, bus):
            await host_alert(sessions, "unreachable")
            await flaky.wait(3)
            await until(sessions, lambda s: _first_delivered(s, flaky_id))
            failing = await until(sessions, lambda s: _channel_alert(s, dead, "open"))
            # The other channels hear that this one cannot deliver.
            told = (await smtp.mailbox.wait(first_mail + 2))[first_mail:]
            async with sessions() as session:
                # Newest first: the alert's, then the one telling of the dead channel.
                _, [_, to_flaky] = await log.search(session, ListQuery(fields={"channel_id": flaky_id}))
                flaky_log = await log.get(session, to_flaky.id)
                _, [to_dead] = await log.search(session, ListQuery(fields={"channel_id": dead}))
                dead_log = await log.get(session, to_dead.id)
                broken = await session.get(NotificationChannel, dead)
                assert broken is not None
                assert broken.failing_since is not None
                assert "cannot reach" in (broken.last_error or "")

            # Pointed at a receiver that answers, it delivers again: no longer failing, alert resolved.
            async with sessions() as session:
                fixed = hook_channel("dead", later.url).target
                await channels.update(session, SYSTEM, box, dead, ChannelUpdate(target=fixed))
                await session.commit()
            await host_alert(sessions, "disk_low", severity="warning")
            await later.wait(1)
            await until(sessions, lambda s: _channel_alert(s, dead, "resolved"))

    assert (flaky_log.state, flaky_log.attempts) == ("delivered", 3)
    assert [(a.ok, a.status_code) for a in flaky_log.log] == [(False, 500), (False, 500), (True, 200)]
    assert (dead_log.state, dead_log.attempts) == ("failed", 3)
    assert all(a.ok is False and "cannot reach" in (a.error or "") for a in dead_log.log)
    assert failing.message.startswith("notification channel dead (webhook) cannot deliver")
    subjects = [m["Subject"] for m in told]
    assert any("notification_failing on channel" in s for s in subjects), subjects
    async with sessions() as session:
        healed = await session.get(NotificationChannel, dead)
        assert healed is not None
        assert (healed.failing_since, healed.last_error) == (None, None)
        # A channel is never told of its own failure: it had only the two alerts' deliveries.
        assert len(await deliveries(session, channel_id=dead)) == 2


async def _channel_alert(session: AsyncSession, channel_id: int, state: str) -> Alert | None:
    stmt = select(Alert).where(
        Alert.resource_kind == "channel", Alert.resource_id == channel_id, Alert.state == state
    )
    return (await session.scalars(stmt)).first()


async def _first_delivered(session: AsyncSession, channel_id: int) -> bool:
    rows = await deliveries(session, channel_id=channel_id)
    return bool(rows) and rows[0].state == "delivered"
