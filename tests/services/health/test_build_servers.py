"""Build server health checks against a real SSH server in this process running real shell
commands: capacity refreshed, disk alerts and the critical threshold that stops claims,
N unanswered checks in a row taking a server offline with its running builds requeued or
failed, recovery, maintenance, and decommissioning refused while builds run.

Validates: 2.1, 2.2, 2.3, 2.4, 2.5, 12.1, 12.2, 12.4, property 3
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Alert, BuildJob, BuildServer
from labfleet.engine.health import HealthMonitor
from labfleet.errors import Conflict
from labfleet.hw.ssh import SshPool, SshSettings
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import ServerStatus
from labfleet.selection import Thresholds
from labfleet.services.builds import queue as build_queue
from labfleet.services.builds import service as builds
from labfleet.services.core.events import EventBus
from labfleet.services.health import build_servers as build_server_health
from labfleet.services.health.build_servers import HealthPolicy
from labfleet.services.inventory import build_servers
from tests.build_rig import BOX, Rig, add_server
from tests.factories import build_server

GB = 1024**3
ARCHS = frozenset({"x86_64", "arm64"})


@dataclass
class Health:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    ssh: LocalSshServer
    home: Path
    pool: SshPool
    server_id: int

    def monitor(self, **policy: Any) -> HealthMonitor:
        fields: dict[str, Any] = {"timeout_seconds": 5.0, **policy}
        return HealthMonitor(
            sessions=self.sessions,
            bus=self.bus,
            secrets=BOX,
            pool=self.pool,
            policy=HealthPolicy(**fields),
            interval_s=0.0,  # every round checks every server
        )

    async def server(self, ident: int | None = None) -> BuildServer:
        async with self.sessions() as session:
            found = await session.get(BuildServer, ident or self.server_id, populate_existing=True)
            assert found is not None
            return found

    async def alerts(self, ident: int | None = None) -> dict[str, Alert]:
        """Every alert of the server, by kind (the newest of each kind)."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Alert)
                .where(Alert.resource_kind == "build_server", Alert.resource_id == (ident or self.server_id))
                .order_by(Alert.id)
            )
            return {a.kind: a for a in rows}

    async def queue(self, **fields: Any) -> int:
        async with self.sessions() as session:
            job = BuildJob(
                repository_url="https://git.lab/linux.git",
                branch="main",
                architecture="x86_64",
                command="make",
                submitted_by="tester",
                server_choice=str(self.server_id),
                build_server_id=self.server_id,
                **fields,
            )
            session.add(job)
            await session.commit()
            return job.id

    async def claim(self, worker: str = "w1", *, critical: float = 10.0) -> BuildJob | None:
        async with self.sessions() as session:
            job = await build_queue.claim_for_server(
                session=session,
                server_id=self.server_id,
                architectures=ARCHS,
                worker=worker,
                lease_seconds=300,
                disk_critical_gb=critical,
            )
            await session.commit()
            return job

    async def job(self, ident: int) -> BuildJob:
        async with self.sessions() as session:
            return await builds.get(session=session, ident=ident, refresh=True)

    async def set_status(self, status: ServerStatus) -> None:
        async with self.sessions() as session:
            await build_servers.set_status(session=session, actor=SYSTEM, ident=self.server_id, status=status)
            await session.commit()


@pytest.fixture
async def health(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[Health]:
    key = new_private_key()
    home = tmp_path / "home"
    home.mkdir()
    engine = create_engine(fresh_db_url)
    sessions = session_factory(engine)
    bus = EventBus()
    # One connection attempt: a stopped server is a failed check at once, not after backoff.
    pool = SshPool(settings=SshSettings(connect_attempts=1, connect_timeout=5))
    try:
        async with LocalSshServer(authorized_keys=[public_key_of(private_key=key)], home=str(home)) as ssh:
            server_id = await add_server(sessions, ssh, key, name="local-build", slots=2)
            yield Health(sessions=sessions, bus=bus, ssh=ssh, home=home, pool=pool, server_id=server_id)
    finally:
        await pool.close()
        await bus.close()
        await engine.dispose()


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / GB


def memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


async def test_a_check_refreshes_capacity_from_the_machine(health: Health) -> None:
    # Validates: 2.1, 2.2
    before = await health.server()
    assert (before.cpu_cores, before.memory_mb, before.checked_at) == (4, None, None)
    (result,) = await health.monitor().check_all()
    assert (result.answered, result.status, result.failures, result.jobs) == (True, "online", 0, ())
    server = await health.server()
    assert server.cpu_cores == len(os.sched_getaffinity(0))
    assert server.memory_mb == memory_mb()
    # The disk is the one of the login directory, where build workspaces live.
    usage = shutil.disk_usage(health.home)
    assert server.disk_total_gb == pytest.approx(usage.total / GB, abs=0.02)
    assert server.disk_free_gb == pytest.approx(usage.free / GB, abs=1.0)
    assert server.load_1m is not None and server.load_1m >= 0
    assert server.checked_at is not None and server.checked_at >= before.updated_at
    assert (server.check_failures, server.last_check_error, server.status) == (0, None, "online")
    # A check is not an edit.
    assert server.updated_at == before.updated_at
    assert await health.alerts() == {}


async def test_property_3_low_disk_warns_and_below_critical_the_server_takes_no_build(health: Health) -> None:
    # Validates: 2.4 (thresholds above the real free disk, rather than filling a disk)
    free = free_gb(health.home)
    queued = await health.queue()

    # Below the warning threshold: a warning alert; the server still takes builds.
    warn = Thresholds(disk_warning_gb=free + 100, disk_critical_gb=0)
    (result,) = await health.monitor(thresholds=warn).check_all()
    assert result.raised == ("disk_low",)
    alert = (await health.alerts())["disk_low"]
    assert (alert.severity, alert.state, alert.occurrences) == ("warning", "open", 1)
    assert f"below the warning threshold of {free + 100:g} GB" in alert.message

    # Below the critical threshold: the same alert, now critical, and no claim on the server.
    critical = Thresholds(disk_warning_gb=free + 100, disk_critical_gb=free + 50)
    await health.monitor(thresholds=critical).check_all()
    alerts = await health.alerts()
    assert list(alerts) == ["disk_low"]
    assert (alerts["disk_low"].severity, alerts["disk_low"].occurrences) == ("critical", 2)
    assert "it takes no new builds" in alerts["disk_low"].message
    assert await health.claim(critical=critical.disk_critical_gb) is None
    assert (await health.job(queued)).status == "queued"

    # Space freed (here: thresholds lowered): the alert is resolved and the server builds again.
    await health.monitor(thresholds=Thresholds(disk_warning_gb=1, disk_critical_gb=0)).check_all()
    resolved = (await health.alerts())["disk_low"]
    assert (resolved.state, resolved.resolved_by) == ("resolved", "labfleet")
    assert resolved.resolved_at is not None
    claimed = await health.claim(critical=0)
    assert claimed is not None and claimed.id == queued


async def test_unanswered_checks_in_a_row_take_the_server_offline_and_its_builds_off_it(
    health: Health,
) -> None:
    # Validates: 2.3, 16.2
    again = await health.queue()  # attempt 1 of 3: requeued
    last = await health.queue(attempt=3)  # its last attempt: failed
    waiting = await health.queue()  # not running: left alone
    claimed = [await health.claim("w1"), await health.claim("w2")]
    assert sorted(j.id for j in claimed if j is not None) == [again, last]
    monitor = health.monitor(failure_limit=3)
    await monitor.check_all()  # answered: the pool now holds a live connection
    sub = health.bus.subscribe([builds.TOPIC_ALL])

    await health.ssh.stop()
    for n in (1, 2):
        (result,) = await monitor.check_all()
        assert (result.answered, result.status, result.failures, result.jobs) == (False, "online", n, ())
        server = await health.server()
        assert (server.status, server.check_failures) == ("online", n)
        assert server.last_check_error is not None and "127.0.0.1" in server.last_check_error
        assert await health.alerts() == {}
        assert {(await health.job(i)).status for i in (again, last)} == {"running"}

    (result,) = await monitor.check_all()
    assert (result.status, result.previous_status, result.failures) == ("offline", "online", 3)
    assert sorted(result.jobs) == sorted([(again, "requeued"), (last, "failed")])
    assert (await health.server()).status == "offline"
    alert = (await health.alerts())["unreachable"]
    assert (alert.severity, alert.state) == ("critical", "open")
    assert "did not answer 3 health checks in a row" in alert.message

    requeued, failed, untouched = [await health.job(i) for i in (again, last, waiting)]
    assert (requeued.status, requeued.lease_owner) == ("queued", None)
    assert requeued.failure_reason == f"{alert.message}; requeued"
    assert (failed.status, failed.failure_reason) == ("failed", alert.message)
    assert failed.finished_at is not None
    assert (untouched.status, untouched.failure_reason) == ("queued", None)
    async with health.sessions() as session:
        running = await session.scalars(select(BuildJob.id).where(BuildJob.status == "running"))
        assert list(running) == []
        log = (await builds.read_log(session=session, ident=again)).data.decode()
    assert f"labfleet: {alert.message} (requeued)" in log
    # The holders lost their leases: what they report now is not recorded.
    async with health.sessions() as session:
        assert not await build_queue.finish_held(
            session=session, job_id=again, worker="w1", status="succeeded"
        )
    # Watchers and idle workers were told.
    heard = set()
    while (event := await sub.get(timeout=0)) is not None:
        heard.add((event.data["job"], event.data["status"]))
    sub.close()
    assert heard == {(again, "queued"), (last, "failed")}

    # Offline, it takes no build; a further failure bumps the one alert.
    assert await health.claim() is None
    (result,) = await monitor.check_all()
    assert (result.status, result.failures, result.jobs) == ("offline", 4, ())
    alerts = await health.alerts()
    assert list(alerts) == ["unreachable"] and alerts["unreachable"].occurrences == 2


async def test_a_server_that_answers_again_comes_back_online(health: Health) -> None:
    # Validates: 2.1, 2.3
    monitor = health.monitor(failure_limit=1)
    queued = await health.queue()
    await health.ssh.stop()
    (result,) = await monitor.check_all()
    assert result.status == "offline"
    assert await health.claim() is None

    await health.ssh.start()  # on the same port
    (result,) = await monitor.check_all()
    assert (result.answered, result.previous_status, result.status) == (True, "offline", "online")
    assert result.resolved == ("unreachable",)
    server = await health.server()
    assert (server.status, server.check_failures, server.last_check_error) == ("online", 0, None)
    assert (await health.alerts())["unreachable"].state == "resolved"
    claimed = await health.claim()
    assert claimed is not None and claimed.id == queued


async def test_a_check_that_gets_no_answer_in_time_is_a_failure(health: Health) -> None:
    # A machine that accepts the connection and then says nothing (hung kernel, full firewall queue).
    held: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _, w: held.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    async with health.sessions() as session:
        server = await session.get(BuildServer, health.server_id)
        assert server is not None
        server.ssh_port = port
        await session.commit()
    try:
        started = asyncio.get_running_loop().time()
        (result,) = await health.monitor(timeout_seconds=1.0).check_all()
        took = asyncio.get_running_loop().time() - started
    finally:
        for writer in held:
            writer.close()
        silent.close()
        with contextlib.suppress(Exception):
            await silent.wait_closed()
    assert (result.answered, result.failures) == (False, 1)
    assert result.error == f"{getpass.getuser()}@127.0.0.1:{port}: no answer within 1 s"
    assert took < 4


async def test_many_servers_are_checked_in_one_round_and_a_dead_one_holds_up_no_other(
    health: Health, tmp_path: Path
) -> None:
    # Validates: 2.1
    key = new_private_key()
    others = []
    async with contextlib.AsyncExitStack() as stack:
        for n in range(3):
            # Each on an address of its own: all of 127/8 is loopback.
            address = f"127.0.0.{10 + n}"
            ssh = await stack.enter_async_context(
                LocalSshServer(
                    authorized_keys=[public_key_of(private_key=key)], home=str(tmp_path), host=address
                )
            )
            others.append(
                await add_server(health.sessions, ssh, key, name=f"build-{n}", slots=1, address=address)
            )
        await health.ssh.stop()
        results = await health.monitor().check_all()
    by_id = {r.server_id: r for r in results}
    assert set(by_id) == {health.server_id, *others}
    assert not by_id[health.server_id].answered
    assert all(by_id[i].answered and by_id[i].status == "online" for i in others)
    for ident in others:
        assert (await health.server(ident)).cpu_cores == len(os.sched_getaffinity(0))


async def test_a_round_claims_its_servers_so_other_processes_skip_them(health: Health) -> None:
    async with health.sessions() as session:
        first = await build_server_health.due(session=session, secrets=BOX, min_gap=30)
        await session.commit()
    async with health.sessions() as session:
        second = await build_server_health.due(session=session, secrets=BOX, min_gap=30)
        await session.commit()
    assert [t.server_id for t in first] == [health.server_id]
    assert second == []
    # Decommissioned servers are never checked.
    async with health.sessions() as session:
        server = await session.get(BuildServer, health.server_id)
        assert server is not None
        server.status = "decommissioned"
        await session.commit()
    async with health.sessions() as session:
        assert await build_server_health.due(session=session, secrets=BOX, min_gap=0) == []


async def test_maintenance_lets_running_builds_finish_and_starts_none(health: Health) -> None:
    # Validates: 2.5, 12.1, 12.2
    running = await health.queue()
    waiting = await health.queue()
    assert (claimed := await health.claim("w1")) is not None and claimed.id == running
    await health.set_status(ServerStatus.maintenance)

    assert await health.claim("w2") is None  # nothing new starts
    # It is still checked: capacity refreshed, but its status is the operator's.
    (result,) = await health.monitor().check_all()
    assert (result.answered, result.status) == (True, "maintenance")
    assert (await health.server()).cpu_cores == len(os.sched_getaffinity(0))
    # The running build finishes and is recorded by its holder.
    async with health.sessions() as session:
        assert await build_queue.finish_held(session=session, job_id=running, worker="w1", status="succeeded")
        await session.commit()
    assert (await health.job(running)).status == "succeeded"
    assert (await health.job(waiting)).status == "queued"

    await health.set_status(ServerStatus.online)
    assert (claimed := await health.claim("w2")) is not None and claimed.id == waiting


async def test_a_server_in_maintenance_that_does_not_answer_stays_in_maintenance(health: Health) -> None:
    # Decided: no status change and no `unreachable` alert in maintenance, but builds that
    # cannot be running any more are not left "running".
    job = await health.queue()
    assert await health.claim() is not None
    await health.set_status(ServerStatus.maintenance)
    await health.ssh.stop()
    (result,) = await health.monitor(failure_limit=1).check_all()
    assert (result.status, result.raised, result.jobs) == ("maintenance", (), ((job, "requeued"),))
    assert (await health.server()).status == "maintenance"
    assert await health.alerts() == {}
    assert (await health.job(job)).status == "queued"


async def test_decommissioning_is_refused_while_a_build_runs(health: Health) -> None:
    # Validates: 12.4
    job = await health.queue()
    assert await health.claim() is not None
    with pytest.raises(Conflict, match=f"build job #{job} is running on it"):
        await health.set_status(ServerStatus.decommissioned)
    async with health.sessions() as session:
        with pytest.raises(Conflict, match="cannot remove build server local-build"):
            await build_servers.remove(session=session, actor=SYSTEM, ident=health.server_id)
    assert (await health.server()).status == "online"

    async with health.sessions() as session:
        assert await build_queue.finish_held(session=session, job_id=job, worker="w1", status="failed")
        await session.commit()
    await health.set_status(ServerStatus.decommissioned)
    assert (await health.server()).status == "decommissioned"


async def test_deleting_a_build_server_with_a_running_build_is_409_naming_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Validates: 12.4 (DELETE /build-servers/{id})
    created = (await client.post("/api/v1/build-servers", json=build_server())).json()
    job = BuildJob(
        repository_url="https://git.lab/linux.git",
        architecture="arm64",
        command="make",
        submitted_by="tester",
        build_server_id=created["id"],
        status="running",
        lease_owner="w1",
    )
    session.add(job)
    await session.commit()
    job_id = job.id
    r = await client.delete(created["url"])
    assert r.status_code == 409
    assert r.json()["detail"] == (
        f"cannot remove build server {created['hostname']}: build job #{job_id} is running on it; "
        "put it in maintenance and wait for them to finish, or cancel them"
    )
    assert (await client.get(created["url"])).json() == {
        **created,
        "active_builds": 1,
    }  # nothing else changed

    finished = await session.get(BuildJob, job_id)
    assert finished is not None
    finished.status = "succeeded"
    await session.commit()
    assert (await client.delete(created["url"])).status_code == 204
    assert (await client.get(created["url"])).status_code == 404


async def test_the_engine_runs_the_checks(rig: Rig) -> None:
    # Validates: 2.1 (wired into Engine, every health_interval_s)
    async with rig.engine(health_interval_s=0.2):
        async with asyncio.timeout(30):
            while True:
                async with rig.sessions() as session:
                    server = await session.get(BuildServer, rig.server_id, populate_existing=True)
                assert server is not None
                if server.checked_at is not None and server.cpu_cores != 4:
                    break
                await asyncio.sleep(0.1)
    assert server.cpu_cores == len(os.sched_getaffinity(0))
    assert (server.status, server.check_failures, server.ssh_user) == ("online", 0, getpass.getuser())
