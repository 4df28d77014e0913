"""What the notification tests share: a database of their own, channels, alerts, waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import NotificationDelivery
from labfleet.engine.notifications import NotificationWorker
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.notifications import ChannelIn
from labfleet.secretbox import SecretBox
from labfleet.services.core import alerts
from labfleet.services.core.events import EventBus
from labfleet.services.notifications import channels
from labfleet.services.notifications.policy import NotificationPolicy
from tests.receivers import Smtp, smtp_server

SECRET = "hook-signing-key-0123"
QUICK = NotificationPolicy(
    lease_seconds=10,
    max_attempts=3,
    backoff_base_seconds=0.05,
    backoff_max_seconds=0.2,
    poll_seconds=0.05,
    timeout_seconds=5,
)

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtp]:
    with smtp_server(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture
async def sessions(fresh_db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(fresh_db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def mail_target(smtp: Smtp, **changes: object) -> dict[str, object]:
    """An email channel's target on the test's SMTP server, logging in over STARTTLS."""
    return {
        "transport": "email",
        "host": smtp.host,
        "port": smtp.port,
        "sender": "labfleet@lab.example",
        "recipients": ["oncall@lab.example"],
        "username": smtp.user,
        "password": smtp.password,
        "ca_file": smtp.ca_file,
    } | changes


def mail_channel(smtp: Smtp, **more: Any) -> ChannelIn:
    return ChannelIn.model_validate({"name": "oncall-mail", "target": mail_target(smtp), **more})


def hook_channel(name: str, url: str, **more: Any) -> ChannelIn:
    target = {"transport": "webhook", "url": url, "secret": SECRET}
    return ChannelIn.model_validate({"name": name, "target": target, **more})


async def add(sessions: Sessions, box: SecretBox, *wanted: ChannelIn) -> list[int]:
    async with sessions() as session:
        made = [await channels.create(session, SYSTEM, box, c, timeout_s=5) for c in wanted]
        await session.commit()
        return [c.id for c in made]


async def host_alert(
    sessions: Sessions, kind: str, severity: str = "critical", *, resolve: bool = False
) -> int:
    async with sessions() as session:
        if resolve:
            done = await alerts.resolve_alert(session=session, resource_kind="host", resource_id=3, kind=kind)
            assert done is not None
            ident = done.id
        else:
            raised = await alerts.raise_alert(
                session=session,
                resource_kind="host",
                resource_id=3,
                kind=kind,
                severity=severity,
                message=f"host kvm-3: {kind}",
            )
            ident = raised.id
        await session.commit()
        return ident


@asynccontextmanager
async def worker(sessions: Sessions, box: SecretBox, bus: EventBus) -> AsyncIterator[NotificationWorker]:
    running = NotificationWorker(sessions=sessions, bus=bus, secrets=box, policy=QUICK)
    task = asyncio.create_task(running.run())
    try:
        yield running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(sessions: Sessions, check: Callable[[AsyncSession], Any], timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            async with sessions() as session:
                found = await check(session)
            if found:
                return found
            await asyncio.sleep(0.05)


async def deliveries(session: AsyncSession, **where: object) -> list[NotificationDelivery]:
    stmt = select(NotificationDelivery).filter_by(**where).order_by(NotificationDelivery.id)
    return list(await session.scalars(stmt))
