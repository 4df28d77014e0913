"""Nothing is lost: a ``labfleet serve`` killed with SIGKILL while its notification is on the
wire, and the alert change it was telling of is delivered after a restart, once per channel,
under the same idempotency key.

Validates: 16.5 (the outbox: DESIGN.md, "State and work")
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import DeliveryAttempt, NotificationDelivery
from labfleet.secretbox import SecretBox
from tests.helpers import LabfleetProcess, free_port
from tests.notify_rig import SECRET, Sessions, add, hook_channel, host_alert, sessions, until
from tests.receivers import Hook

__all__ = ["sessions"]  # the fixture


def _serve(tmp: Path, name: str, db_url: str, key_file: Path) -> LabfleetProcess:
    data = tmp / f"data-{name}"
    data.mkdir()
    env = {
        **os.environ,
        "LABFLEET_DATA_DIR": str(data),
        "LABFLEET_DATABASE_URL": db_url,
        "LABFLEET_SECRET_KEY_FILE": str(key_file),
        "LABFLEET_DEVICE_CHECKS": "false",
        "LABFLEET_NOTIFY_LEASE_SECONDS": "2",
        "LABFLEET_NOTIFY_POLL_SECONDS": "0.1",
        "LABFLEET_NOTIFY_TIMEOUT_SECONDS": "60",
    }
    argv = ["serve", "--port", str(free_port())]
    return LabfleetProcess(argv, env=env, stdout=str(data / "out.log"), stderr=str(data / "err.log"))


async def test_kill_9_mid_delivery_then_restart_delivers_once_with_the_same_key(
    sessions: Sessions, fresh_db_url: str, tmp_path: Path
) -> None:
    key = Fernet.generate_key()
    key_file = tmp_path / "secret.key"
    key_file.write_bytes(key)
    with Hook(SECRET) as hook:
        [channel] = await add(sessions, SecretBox(key), hook_channel("ops-hook", hook.url))
        # The change and its notice are committed together, with no labfleet running at all.
        alert = await host_alert(sessions, "unreachable")
        hook.hold.set()  # the first request is taken, and never answered
        first = _serve(tmp_path, "a", fresh_db_url, key_file)
        try:
            [held] = await hook.wait(1, timeout=60)
        finally:
            first.kill()
            await asyncio.to_thread(first.wait, 30)
        hook.hold.clear()
        hook.release.set()

        second = _serve(tmp_path, "b", fresh_db_url, key_file)
        try:
            done = await until(sessions, _delivered, timeout=60)
        finally:
            second.terminate()
            await asyncio.to_thread(second.wait, 30)
        received = hook.received

    assert len(received) == 2
    again = received[1]
    assert again.headers["Idempotency-Key"] == held.headers["Idempotency-Key"]
    assert again.body == held.body and again.signed
    assert json.loads(again.body)["alert"]["id"] == alert
    assert [(d.channel_id, d.state, d.attempts) for d in done] == [(channel, "delivered", 2)]
    async with sessions() as session:
        tries = list(await session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))
    # The killed process's try never finished; the log shows that, then the one that did.
    assert [(t.ok, t.finished_at is None) for t in tries] == [(None, True), (True, False)]
    assert tries[0].worker != tries[1].worker


async def _delivered(session: AsyncSession) -> list[NotificationDelivery] | None:
    rows = list(await session.scalars(select(NotificationDelivery)))
    return rows if rows and all(r.state == "delivered" for r in rows) else None
