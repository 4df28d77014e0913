"""Settings applied without a restart in every process: one process stores them, another's
view has them within seconds (at once by NOTIFY on PostgreSQL, within its ttl on SQLite),
and its workers decide by them on their next round.

Validates: 2.1, 9.1, 10.1 (settings of seed task 17.10)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.engine.health import HealthMonitor
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.settings import LabSettings
from labfleet.secretbox import SecretBox
from labfleet.services.builds.run import SshPool
from labfleet.services.core import lab_settings
from labfleet.services.core.events import EventBus
from labfleet.services.core.lab_settings import SettingsView
from labfleet.services.health import tuning
from labfleet.services.health.build_servers import HealthPolicy

Sessions = async_sessionmaker[AsyncSession]


class Process:
    """What one labfleet process has: its own connections, bus and view of the settings."""

    def __init__(self, db_url: str, ttl: float) -> None:
        self.engine = create_engine(db_url)
        self.sessions = session_factory(self.engine)
        self.bus = EventBus()
        self.view = SettingsView(self.sessions, LabSettings(), bus=self.bus, ttl=ttl)
        self._db_url = db_url

    async def start(self) -> None:
        await self.bus.connect(self._db_url)
        self.task = asyncio.create_task(self.view.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.bus.close()
        await self.engine.dispose()


@pytest.fixture
async def two(fresh_db_url: str, backend: str) -> AsyncIterator[tuple[Process, Process]]:
    # On PostgreSQL the notice must do it: a ttl longer than the test waits.
    ttl = 60.0 if backend == "postgresql" else 0.3
    pair = (Process(fresh_db_url, ttl), Process(fresh_db_url, ttl))
    for p in pair:
        await p.start()
    try:
        yield pair
    finally:
        for p in pair:
            await p.stop()


async def test_a_change_in_one_process_is_applied_by_the_other(two: tuple[Process, Process]) -> None:
    one, other = two
    monitor = HealthMonitor(
        sessions=other.sessions,
        bus=other.bus,
        secrets=SecretBox(Fernet.generate_key()),
        pool=SshPool(),
        policy=HealthPolicy(),
        lab=lambda: other.view.current,
    )
    assert monitor.interval() == 60.0
    assert monitor.policy(4).failure_limit == 3

    wanted = LabSettings.model_validate(
        {
            "check_interval_seconds": {"build_server": 15},
            "thresholds": {"build_server": {"failure_limit": 2, "disk_critical_gb": 5}},
        }
    )
    async with one.sessions() as session:
        stored = await lab_settings.replace(session, SYSTEM, wanted, defaults=LabSettings())
        await session.commit()
    lab_settings.announce(one.bus, stored)

    async with asyncio.timeout(5):
        while True:
            if other.view.stored.version == 1:
                break
            await asyncio.sleep(0.05)
    assert monitor.interval() == 15.0
    policy = monitor.policy(4)
    assert (policy.failure_limit, policy.thresholds.disk_critical_gb) == (2, 5.0)
    assert other.view.current.detection_seconds(ResourceKind.build_server, 2) == pytest.approx(33.0)


def test_rounds_move_by_up_to_the_jitter_and_never_past_what_detection_counts_on() -> None:
    lab = LabSettings.model_validate({"check_interval_seconds": {"host": 100}, "check_jitter": 0.2})
    assert tuning.next_round(lab, ResourceKind.host, draw=lambda: 0.0) == pytest.approx(80.0)
    assert tuning.next_round(lab, ResourceKind.host, draw=lambda: 0.5) == pytest.approx(100.0)
    assert tuning.next_round(lab, ResourceKind.host, draw=lambda: 1.0) == pytest.approx(120.0)
    assert lab.detection_seconds(ResourceKind.host, 1) == pytest.approx(120.0)
    rounds = {round(tuning.next_round(lab, ResourceKind.host), 3) for _ in range(50)}
    assert len(rounds) > 40 and all(80 <= r <= 120 for r in rounds)
