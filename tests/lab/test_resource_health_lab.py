"""Host health checks against the lab's real libvirtd: a check keeps a utilization sample of
the host; with libvirtd stopped the host goes offline after the configured number of failed
checks, with an alert, and comes back online once libvirtd is started again, as the lab
starts it. The lab is left as it was found: libvirtd running and answering.

Validates: 9.1, 9.2, 9.3, 9.5, property 10
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Alert, Host, UtilizationSample
from labfleet.engine.resource_health import ResourceHealthMonitor
from labfleet.hw.ssh import SshPool
from labfleet.lab import libvirt as lab_libvirt
from labfleet.lab.procs import running_pid, stop
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.hosts import HostCreate
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.health.boards import BoardHealthPolicy, ProbeOnly
from labfleet.services.health.hosts import HostHealthPolicy, LibvirtProbe
from labfleet.services.health.probes import NoProbe
from labfleet.services.inventory import hosts
from labfleet.services.inventory.device_checks import DeviceChecks
from labfleet.services.power.service import PowerPolicy
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())
FAILURE_LIMIT = 2


@dataclass
class LabHosts:
    sessions: async_sessionmaker[AsyncSession]
    monitor: ResourceHealthMonitor
    host_id: int

    async def row(self) -> Host:
        async with self.sessions() as session:
            found = await session.get(Host, self.host_id, populate_existing=True)
            assert found is not None
            return found

    async def samples(self) -> list[UtilizationSample]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(UtilizationSample)
                .where(UtilizationSample.host_id == self.host_id)
                .order_by(UtilizationSample.id)
            )
            return list(rows)

    async def alert(self) -> Alert | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(Alert)
                .where(Alert.resource_kind == "host", Alert.resource_id == self.host_id)
                .order_by(Alert.id.desc())
                .execution_options(populate_existing=True)
            )


@pytest.fixture
async def lab_hosts(lab: VirtualLab, fresh_db_url: str) -> AsyncIterator[LabHosts]:
    engine = create_engine(fresh_db_url)
    sessions = session_factory(engine)
    bus = EventBus()
    try:
        async with SshPool() as pool, sessions() as session:
            host = await hosts.register(
                session=session,
                actor=SYSTEM,
                secrets=BOX,
                validator=DeviceChecks(pool=pool, timeout=30),
                data=HostCreate.model_validate(
                    {
                        "hostname": "lab-kvm",
                        "address": lab.host,
                        "ssh": {
                            "username": "root",
                            "port": lab.ssh_port,
                            "private_key": lab.private_key.read_text(),
                        },
                        "libvirt_uri": lab.libvirt_uri,
                    }
                ),
            )
            await session.commit()
            host_id = host.id
        monitor = ResourceHealthMonitor(
            sessions=sessions,
            bus=bus,
            secrets=BOX,
            hosts=LibvirtProbe(timeout=20),
            boards=ProbeOnly(NoProbe()),
            hardware=None,
            host_policy=HostHealthPolicy(failure_limit=FAILURE_LIMIT, timeout_seconds=30),
            board_policy=BoardHealthPolicy(),
            power_policy=PowerPolicy(),
            interval_s=0.0,
        )
        yield LabHosts(sessions=sessions, monitor=monitor, host_id=host_id)
    finally:
        await bus.close()
        await engine.dispose()


async def test_the_lab_host_is_sampled_goes_offline_without_libvirtd_and_comes_back(
    lab: VirtualLab, lab_hosts: LabHosts
) -> None:
    registered = await lab_hosts.row()
    (result,) = await lab_hosts.monitor.check_hosts()
    assert (result.answered, result.status, result.failures) == (True, "online", 0)
    assert result.usage is not None
    (sample,) = await lab_hosts.samples()
    assert sample.running_vms >= 0
    assert 0 <= sample.memory_pct <= 100
    assert 0 <= sample.storage_pct <= 100 and sample.cpu_pct >= 0
    assert (sample.cpu_pct, sample.memory_pct, sample.storage_pct) == (
        result.usage.cpu_pct,
        result.usage.memory_pct,
        result.usage.storage_pct,
    )
    host = await lab_hosts.row()
    assert (host.cpu_cores, host.memory_mb) == (registered.cpu_cores, registered.memory_mb)
    assert (host.check_failures, host.status) == (0, "online")
    # What libvirt could not tell (the lab's libvirtd has no storage pool) is said, not hidden.
    assert host.last_check_error == ("; ".join(result.usage.problems) or None)

    # libvirtd stopped as `lab down` stops it (by its pid file); started again as `lab up` does.
    daemon = lab_libvirt.libvirtd(lab.paths)
    try:
        assert await asyncio.to_thread(stop, daemon, grace=15)
        for failures in range(1, FAILURE_LIMIT + 1):
            (result,) = await lab_hosts.monitor.check_hosts()
            expected = "offline" if failures == FAILURE_LIMIT else "online"
            assert (result.answered, result.failures, result.status) == (False, failures, expected)
            assert result.error is not None and "libvirt" in result.error
            assert (await lab_hosts.row()).status == expected
        alert = await lab_hosts.alert()
        assert alert is not None and (alert.state, alert.severity) == ("open", "critical")
        assert f"did not answer {FAILURE_LIMIT} health checks in a row" in alert.message
        assert len(await lab_hosts.samples()) == 1
    finally:
        await asyncio.to_thread(lab_libvirt.start, lab.paths)
        await asyncio.to_thread(lab_libvirt.wait_ready, lab.paths, timeout=120)
    assert running_pid(daemon) is not None
    assert lab.status().up

    (back,) = await lab_hosts.monitor.check_hosts()
    assert (back.answered, back.previous_status, back.status, back.resolved) == (
        True,
        "offline",
        "online",
        ("unreachable",),
    )
    assert (await lab_hosts.row()).check_failures == 0
    resolved = await lab_hosts.alert()
    assert resolved is not None and resolved.state == "resolved"
    assert len(await lab_hosts.samples()) == 2
