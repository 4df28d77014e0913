"""Build server health checks against the lab's real sshd: capacity refreshed, disk thresholds
that stop claims, a server that stops answering taken offline with its running build
requeued, and back online when it answers again; a changed host key is never trusted.

Validates: 2.1, 2.2, 2.3, 2.4, property 3
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Alert, BuildJob, BuildServer
from labfleet.engine.health import HealthMonitor
from labfleet.errors import DeviceError
from labfleet.hw.ssh import SshPool, SshSettings
from labfleet.hw.ssh_server import new_private_key, public_key_of
from labfleet.secretbox import SecretBox
from labfleet.selection import Thresholds
from labfleet.services.builds import queue as build_queue
from labfleet.services.builds import service as builds
from labfleet.services.core.events import EventBus
from labfleet.services.health.build_servers import HealthPolicy
from labfleet.services.health.probes import LiveProbe
from labfleet.services.inventory import credentials
from tests.lab.conftest import VirtualLab, register_build_server

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())


@dataclass
class LabHealth:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    pool: SshPool
    server: BuildServer  # as registered

    def monitor(self, **policy: Any) -> HealthMonitor:
        return HealthMonitor(
            sessions=self.sessions,
            bus=self.bus,
            secrets=BOX,
            pool=self.pool,
            policy=HealthPolicy(**{"timeout_seconds": 30.0, **policy}),
            interval_s=0.0,
        )

    async def row(self) -> BuildServer:
        async with self.sessions() as session:
            found = await session.get(BuildServer, self.server.id, populate_existing=True)
            assert found is not None
            return found

    async def change(self, **values: Any) -> None:
        async with self.sessions() as session:
            found = await session.get(BuildServer, self.server.id)
            assert found is not None
            for name, value in values.items():
                setattr(found, name, value)
            await session.commit()

    async def alert(self, kind: str) -> Alert | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(Alert)
                .where(Alert.resource_id == self.server.id, Alert.kind == kind)
                .order_by(Alert.id.desc())
            )

    async def queue(self) -> int:
        async with self.sessions() as session:
            job = BuildJob(
                repository_url="git://lab/linux.git",
                branch="main",
                architecture="arm64",
                command="make",
                submitted_by="tester",
                server_choice=str(self.server.id),
                build_server_id=self.server.id,
            )
            session.add(job)
            await session.commit()
            return job.id

    async def claim(self, *, critical: float) -> BuildJob | None:
        async with self.sessions() as session:
            job = await build_queue.claim_for_server(
                session=session,
                server_id=self.server.id,
                architectures={"arm64", "x86_64"},
                worker="lab-worker",
                lease_seconds=300,
                disk_critical_gb=critical,
            )
            await session.commit()
            return job


@pytest.fixture
async def lab_health(lab: VirtualLab, fresh_db_url: str) -> AsyncIterator[LabHealth]:
    engine = create_engine(fresh_db_url)
    sessions = session_factory(engine)
    bus = EventBus()
    try:
        async with SshPool(settings=SshSettings(connect_attempts=1)) as pool:
            async with sessions() as session:
                server = await register_build_server(lab, session, pool, BOX)
            yield LabHealth(sessions=sessions, bus=bus, pool=pool, server=server)
    finally:
        await bus.close()
        await engine.dispose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_check_refreshes_what_registration_detected(lab_health: LabHealth) -> None:
    registered = lab_health.server
    await lab_health.change(cpu_cores=1, memory_mb=1, disk_free_gb=None, load_1m=None)
    (result,) = await lab_health.monitor().check_all()
    assert (result.answered, result.status, result.failures) == (True, "online", 0)
    server = await lab_health.row()
    assert (server.cpu_cores, server.memory_mb) == (registered.cpu_cores, registered.memory_mb)
    assert server.disk_total_gb == registered.disk_total_gb
    assert registered.disk_free_gb is not None and server.disk_free_gb is not None
    assert server.disk_free_gb == pytest.approx(registered.disk_free_gb, abs=2.0)
    assert server.load_1m is not None and server.checked_at is not None
    assert (server.check_failures, server.last_check_error) == (0, None)


async def test_property_3_the_lab_server_below_its_disk_thresholds(lab_health: LabHealth) -> None:
    free = lab_health.server.disk_free_gb
    assert free is not None
    queued = await lab_health.queue()
    critical = Thresholds(disk_warning_gb=free + 100, disk_critical_gb=free + 50)
    await lab_health.monitor(thresholds=critical).check_all()
    alert = await lab_health.alert("disk_low")
    assert alert is not None and (alert.severity, alert.state) == ("critical", "open")
    assert await lab_health.claim(critical=critical.disk_critical_gb) is None

    await lab_health.monitor(
        thresholds=Thresholds(disk_warning_gb=free + 100, disk_critical_gb=0)
    ).check_all()
    alert = await lab_health.alert("disk_low")
    assert alert is not None and (alert.severity, alert.occurrences) == ("warning", 2)
    claimed = await lab_health.claim(critical=0)
    assert claimed is not None and claimed.id == queued

    await lab_health.monitor(thresholds=Thresholds(disk_warning_gb=0, disk_critical_gb=0)).check_all()
    alert = await lab_health.alert("disk_low")
    assert alert is not None and alert.state == "resolved"


async def test_the_lab_server_unreachable_goes_offline_and_comes_back(lab_health: LabHealth) -> None:
    job = await lab_health.queue()
    assert await lab_health.claim(critical=0) is not None
    monitor = lab_health.monitor(failure_limit=2)
    # Its sshd no longer answers where labfleet looks for it: nothing listens on that port.
    await lab_health.change(ssh_port=closed_port())
    first, second = [(await monitor.check_all())[0] for _ in range(2)]
    assert (first.status, first.failures) == ("online", 1)
    assert first.error is not None and "refused" in first.error.lower()
    assert (second.status, second.failures, second.jobs) == ("offline", 2, ((job, "requeued"),))
    unreachable = await lab_health.alert("unreachable")
    assert unreachable is not None and unreachable.state == "open"
    async with lab_health.sessions() as session:
        requeued = await builds.get(session=session, ident=job, refresh=True)
    assert (requeued.status, requeued.failure_reason) == ("queued", f"{unreachable.message}; requeued")

    await lab_health.change(ssh_port=lab_health.server.ssh_port)
    (back,) = await monitor.check_all()
    assert (back.previous_status, back.status, back.failures) == ("offline", "online", 0)
    resolved = await lab_health.alert("unreachable")
    assert resolved is not None and resolved.state == "resolved"
    assert (await lab_health.claim(critical=0)) is not None


async def test_a_changed_host_key_is_a_failed_check_never_trusted(lab_health: LabHealth) -> None:
    await lab_health.change(ssh_host_key=public_key_of(private_key=new_private_key()))
    (result,) = await lab_health.monitor().check_all()
    assert (result.answered, result.failures) == (False, 1)
    assert result.error is not None and "host key" in result.error.lower()
    assert (await lab_health.row()).last_check_error == result.error


async def test_the_live_probe_that_lets_the_lab_server_leave_maintenance(lab_health: LabHealth) -> None:
    # Validates: 12.3 (what PUT /build-servers/{id}/status runs before a server is back online)
    server = await lab_health.row()
    ssh = credentials.ssh_target(BOX, server)
    probe = LiveProbe(pool=lab_health.pool, timeout=30)
    facts = await probe.build_server(ssh)
    assert facts is not None
    assert facts.disk_free_bytes is not None and facts.disk_free_bytes > 0
    assert facts.cpu_count == server.cpu_cores
    with pytest.raises(DeviceError):
        await probe.build_server(replace(ssh, port=closed_port()))
