"""The lab's sshd stopped for real: the build server goes offline within its checks, its alert
is raised, and an email (aiosmtpd, over STARTTLS with a login) and a signed webhook say so;
sshd started again: back online, the alert resolved, and "resolved" told the same way.

Validates: 2.3, 16.1, 16.5 (the issue's integration check on the virtual lab)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import NotificationDelivery
from labfleet.lab import procs, sshd
from tests.lab.conftest import VirtualLab
from tests.lab.test_build_server_health_lab import BOX, LabHealth, lab_health
from tests.notify_rig import SECRET, add, hook_channel, mail_channel, smtp, until, worker
from tests.receivers import Hook, Smtp

pytestmark = pytest.mark.lab
__all__ = ["lab_health", "smtp"]  # the fixtures


@pytest.fixture
def sshd_restored(lab: VirtualLab) -> Iterator[None]:
    """Whatever the test does to the lab's sshd, it runs again afterwards, for the next test."""
    try:
        yield
    finally:
        sshd.start(lab.paths)


async def test_sshd_stopped_then_started_is_alerted_mailed_and_posted_both_ways(
    lab: VirtualLab, lab_health: LabHealth, smtp: Smtp, sshd_restored: None
) -> None:
    first_mail = len(smtp.mailbox.messages)
    server = lab_health.server.id
    with Hook(SECRET) as hook:
        await add(lab_health.sessions, BOX, mail_channel(smtp), hook_channel("ops-hook", hook.url))
        monitor = lab_health.monitor(failure_limit=2)
        async with worker(lab_health.sessions, BOX, lab_health.bus):
            assert (await monitor.check_all())[0].status == "online"

            await asyncio.to_thread(procs.stop, sshd.daemon(lab.paths))
            first, second = [(await monitor.check_all())[0] for _ in range(2)]
            assert (first.status, second.status) == ("online", "offline")
            raised = await until(lab_health.sessions, lambda s: _delivered(s, 2))
            assert raised
            [posted] = await hook.wait(1)
            [mailed] = (await smtp.mailbox.wait(first_mail + 1))[first_mail:]

            await asyncio.to_thread(sshd.start, lab.paths)
            (back,) = await monitor.check_all()
            assert (back.previous_status, back.status) == ("offline", "online")
            await until(lab_health.sessions, lambda s: _delivered(s, 4))
            told = await hook.wait(2)
            mails = (await smtp.mailbox.wait(first_mail + 2))[first_mail:]

    body = json.loads(posted.body)
    assert posted.signed
    assert (body["event"], body["alert"]["kind"], body["alert"]["resource_id"]) == (
        "raised",
        "unreachable",
        server,
    )
    assert mailed["Subject"] == f"[labfleet] CRITICAL raised: unreachable on build server {server}"
    assert "build server lab-build did not answer 2 health checks in a row" in mailed.get_payload()
    assert [json.loads(r.body)["event"] for r in told] == ["raised", "resolved"]
    assert [m["Subject"].split(":")[0] for m in mails] == [
        "[labfleet] CRITICAL raised",
        "[labfleet] CRITICAL resolved",
    ]
    alert = await lab_health.alert("unreachable")
    assert alert is not None and alert.state == "resolved"


async def _delivered(session: AsyncSession, count: int) -> bool:
    done = await session.scalar(
        select(func.count())
        .select_from(NotificationDelivery)
        .where(NotificationDelivery.state == "delivered")
    )
    return int(done or 0) >= count
