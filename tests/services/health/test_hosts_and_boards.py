"""Host and board health checks with fake devices, on SQLite and PostgreSQL: a host that stops
answering goes offline after N checks in a row and back online when it answers (property
10), utilization samples kept for the graphs and pruned; a board that stops answering is
power-cycled once before it goes offline (property 13), a hot board is degraded, its power
state read; maintenance, flashing, busy boards, and the engine running it all.

Validates: 9.1, 9.2, 9.3, 9.5, 10.1, 10.2, 10.3, 10.4, 12.1, 16.1, 16.2, property 10, property 13
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import (
    Alert,
    Board,
    BoardHealth,
    BoardLabel,
    Environment,
    HealthThreshold,
    Host,
    PowerAction,
    Reservation,
    UtilizationSample,
)
from labfleet.engine import Engine, EngineSettings
from labfleet.engine.resource_health import ResourceHealthMonitor
from labfleet.errors import Unreachable
from labfleet.hw.fakes import FakePower
from labfleet.hw.power import PowerState
from labfleet.secretbox import SecretBox
from labfleet.services.core.device_locks import device_lock
from labfleet.services.core.events import EventBus
from labfleet.services.health.boards import BoardHealthPolicy
from labfleet.services.health.hosts import HostHealthPolicy, HostUsage
from labfleet.services.health.probes import BoardAccess, HostAccess
from labfleet.services.power.service import PowerPolicy
from labfleet.storage import LocalStore
from tests.power_fakes import BANNER, FakeHardware

BOX = SecretBox(Fernet.generate_key())
POWER = PowerPolicy(off_s=0.0, boot_timeout_s=1.0, attempts=1, command_timeout_s=5.0)
USAGE = HostUsage(
    cpu_cores=8,
    memory_mb=16384,
    storage_gb=500.0,
    cpu_pct=25.0,
    memory_pct=40.5,
    storage_pct=12.0,
    running_vms=2,
)
PROPERTY = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_names = itertools.count(1)


@dataclass
class FakeProbe:
    """Devices in memory: each probe of a host or board takes its next scripted answer
    (True once the script is spent); boards print what ``readings`` says."""

    answers: dict[str, list[bool]] = field(default_factory=dict)
    usage: dict[str, HostUsage] = field(default_factory=dict)
    readings: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def script(self, name: str, answers: list[bool]) -> None:
        self.answers[name] = list(answers)

    def left(self, name: str) -> int:
        return len(self.answers.get(name, []))

    def _answer(self, name: str, where: str) -> None:
        self.asked.append(name)
        script = self.answers.get(name)
        if script and not script.pop(0):
            raise Unreachable(f"{where}: connection refused")

    async def host_usage(self, access: HostAccess) -> HostUsage | None:
        self._answer(access.name, access.libvirt_uri)
        return self.usage.get(access.name, USAGE)

    async def board(self, access: BoardAccess) -> None:
        self._answer(access.name, access.console_url or access.name)

    async def board_read(self, access: BoardAccess, command: str, *, timeout: float) -> str | None:
        self.commands.append(command)
        return self.readings.get(access.name)


@dataclass
class UnknownPower(FakePower):
    """pdudaemon: switches, but cannot tell the state."""

    async def state(self, *, timeout: float) -> PowerState:
        return PowerState.UNKNOWN


@dataclass
class Rig:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    probe: FakeProbe
    hardware: FakeHardware
    tmp: Path

    def monitor(self, *, limit: int = 3, **board: Any) -> ResourceHealthMonitor:
        return ResourceHealthMonitor(
            sessions=self.sessions,
            bus=self.bus,
            secrets=BOX,
            hosts=self.probe,
            boards=self.probe,
            hardware=self.hardware,
            host_policy=HostHealthPolicy(failure_limit=limit, timeout_seconds=5.0),
            board_policy=BoardHealthPolicy(failure_limit=limit, timeout_seconds=5.0, **board),
            power_policy=POWER,
            interval_s=0.0,  # every round checks everything
        )

    async def add_host(self, **fields: Any) -> tuple[int, str]:
        name = f"kvm-{next(_names)}"
        async with self.sessions() as session:
            host = Host(
                hostname=name,
                address=f"{name}.lab",
                ssh_user="root",
                libvirt_uri=f"qemu+ssh://root@{name}.lab/system",
                cpu_cores=4,
                memory_mb=8192,
                storage_gb=100.0,
                **fields,
            )
            session.add(host)
            await session.commit()
            return host.id, name

    async def add_board(
        self, *, powered: bool = True, labels: dict[str, str] | None = None, **fields: Any
    ) -> tuple[int, str]:
        name = f"board-{next(_names)}"
        async with self.sessions() as session:
            board = Board(
                name=name,
                board_type="fake",
                architecture="arm64",
                serial_number=f"sn-{name}",
                console_url=f"socket://127.0.0.1:1/{name}",
                labels=[
                    BoardLabel(key=k, value=v) for k, v in {"boot-pattern": BANNER, **(labels or {})}.items()
                ],
                **(
                    {"power_driver": "command", "power_params": {"on": "true", "off": "true"}}
                    if powered
                    else {}
                ),
                **fields,
            )
            session.add(board)
            await session.commit()
            ident = board.id
        if powered:
            self.hardware.board(ident)
        return ident, name

    async def get(self, model: type[Any], ident: int) -> Any:
        async with self.sessions() as session:
            return await session.get(model, ident, populate_existing=True)

    async def set(self, model: type[Any], ident: int, **values: Any) -> None:
        async with self.sessions() as session:
            row = await session.get(model, ident)
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)
            await session.commit()

    async def alert(self, kind: str, ident: int, name: str = "unreachable") -> Alert | None:
        """The newest alert of that resource and kind."""
        async with self.sessions() as session:
            return await session.scalar(
                select(Alert)
                .where(Alert.resource_kind == kind, Alert.resource_id == ident, Alert.kind == name)
                .order_by(Alert.id.desc())
                .execution_options(populate_existing=True)
            )

    async def board_checked(self, board_id: int) -> bool:
        """Whether a check of the board has been recorded (its row is made when it is claimed)."""
        health = await self.get(BoardHealth, board_id)
        return health is not None and health.reachable is not None

    async def cycles(self, board_id: int) -> int:
        async with self.sessions() as session:
            n = await session.scalar(
                select(func.count())
                .select_from(PowerAction)
                .where(PowerAction.board_id == board_id, PowerAction.action == "cycle")
            )
            return int(n or 0)

    async def samples(self, host_id: int) -> list[UtilizationSample]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(UtilizationSample)
                .where(UtilizationSample.host_id == host_id)
                .order_by(UtilizationSample.id)
            )
            return list(rows)


@pytest.fixture
async def rig(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    engine = create_engine(fresh_db_url)
    bus = EventBus()
    try:
        yield Rig(
            sessions=session_factory(engine),
            bus=bus,
            probe=FakeProbe(),
            hardware=FakeHardware(),
            tmp=tmp_path,
        )
    finally:
        await bus.close()
        await engine.dispose()


# -- hosts


@PROPERTY
@given(answers=st.lists(st.booleans(), min_size=1, max_size=10), limit=st.integers(1, 3))
async def test_property_10_unreachable_host_status_transition(
    rig: Rig, answers: list[bool], limit: int
) -> None:
    # Validates: 9.3, 16.1, 16.2 (property 10): offline exactly after N failed checks in a row,
    # with a critical alert; online again, the alert resolved, when it answers.
    host_id, name = await rig.add_host()
    rig.probe.script(name, answers)
    monitor = rig.monitor(limit=limit)
    failures, status, alerts_raised = 0, "online", 0
    try:
        for answered in answers:
            results = {r.host_id: r for r in await monitor.check_hosts()}
            result = results[host_id]
            failures = 0 if answered else failures + 1
            previous = status
            if answered:
                status = "online"
            elif failures >= limit:
                status = "offline"
            if status == "offline" and previous == "online":
                alerts_raised += 1
            assert (result.answered, result.failures, result.status) == (answered, failures, status)
            host = await rig.get(Host, host_id)
            assert (host.status, host.check_failures) == (status, failures)
            alert = await rig.alert("host", host_id)
            if status == "offline":
                assert alert is not None and (alert.state, alert.severity) == ("open", "critical")
                assert f"did not answer {failures} health checks in a row" in alert.message
            else:
                assert alert is None or alert.state == "resolved"
            if answered and previous == "offline":
                assert result.resolved == ("unreachable",)
        async with rig.sessions() as session:
            raised = await session.scalar(
                select(func.count())
                .select_from(Alert)
                .where(Alert.resource_id == host_id, Alert.resource_kind == "host")
            )
        assert raised == alerts_raised  # one per outage, de-duplicated within it
    finally:
        await rig.set(Host, host_id, status="decommissioned")  # out of the next examples' rounds


async def test_an_answered_check_keeps_a_utilization_sample_and_refreshes_capacity(rig: Rig) -> None:
    # Validates: 9.1, 9.2, 9.5
    host_id, name = await rig.add_host()
    before = await rig.get(Host, host_id)
    (result,) = await rig.monitor().check_hosts()
    assert (result.answered, result.status, result.usage) == (True, "online", USAGE)
    host = await rig.get(Host, host_id)
    assert (host.cpu_cores, host.memory_mb, host.storage_gb) == (8, 16384, 500.0)
    assert (host.check_failures, host.last_check_error) == (0, None)
    assert host.checked_at is not None and host.updated_at == before.updated_at  # a check is no edit
    rig.probe.usage[name] = HostUsage(
        cpu_cores=8,
        memory_mb=16384,
        storage_gb=None,
        cpu_pct=50.0,
        memory_pct=60.0,
        storage_pct=0.0,
        running_vms=4,
        problems=("storage: libvirt has no active storage pool to measure",),
    )
    await rig.monitor().check_hosts()
    first, second = await rig.samples(host_id)
    assert (first.cpu_pct, first.memory_pct, first.storage_pct, first.running_vms) == (25.0, 40.5, 12.0, 2)
    assert (second.cpu_pct, second.memory_pct, second.running_vms) == (50.0, 60.0, 4)
    host = await rig.get(Host, host_id)
    assert host.storage_gb == 500.0  # what libvirt could not tell keeps its last value
    assert host.last_check_error == "storage: libvirt has no active storage pool to measure"

    # An unanswered check keeps no sample.
    rig.probe.script(name, [False])
    await rig.monitor().check_hosts()
    assert len(await rig.samples(host_id)) == 2


async def test_samples_past_the_retention_are_pruned(rig: Rig) -> None:
    # Validates: 9.5
    host_id, _ = await rig.add_host()
    now = utcnow()
    async with rig.sessions() as session:
        for age in (timedelta(days=8), timedelta(days=7, minutes=1), timedelta(days=6), timedelta(0)):
            session.add(
                UtilizationSample(
                    host_id=host_id, taken_at=now - age, cpu_pct=1, memory_pct=1, storage_pct=1, running_vms=0
                )
            )
        await session.commit()
    assert await rig.monitor().prune_samples() == 2
    kept = await rig.samples(host_id)
    assert sorted(round((now - s.taken_at).total_seconds() / 86400) for s in kept) == [0, 6]
    assert await rig.monitor().prune_samples() == 0


async def test_an_offline_host_alert_flags_its_vms_environments_and_reservations(rig: Rig) -> None:
    # Validates: 9.3
    host_id, name = await rig.add_host()
    await rig.monitor().check_hosts()  # a sample: 2 VMs running
    async with rig.sessions() as session:
        held = Reservation(
            host_id=host_id, owner="ana", vcpus=2, memory_mb=1024, expires_at=utcnow() + timedelta(hours=1)
        )
        session.add(held)
        await session.flush()
        env = Environment(
            kind="qemu",
            status="ready",
            owner="ana",
            architecture="x86_64",
            host_id=host_id,
            reservation_id=held.id,
            expires_at=utcnow() + timedelta(hours=1),
        )
        gone = Environment(
            kind="qemu", status="released", owner="bob", architecture="x86_64", host_id=host_id,
            expires_at=utcnow(),
        )  # fmt: skip
        session.add_all([env, gone])
        await session.commit()
        reservation, environment = held.id, env.id
    rig.probe.script(name, [False])
    (result,) = await rig.monitor(limit=1).check_hosts()
    assert (result.status, result.raised, result.reservations) == (
        "offline",
        ("unreachable",),
        (reservation,),
    )
    alert = await rig.alert("host", host_id)
    assert alert is not None
    assert "2 VM(s) were running on it at its last answer" in alert.message
    assert f"reservations #{reservation} (ana) hold it" in alert.message
    assert f"environments #{environment} (ana) are on it" in alert.message  # not the released one
    assert "connection refused" in alert.message


async def test_a_host_in_maintenance_is_checked_but_keeps_its_status(rig: Rig) -> None:
    # Validates: 12.1, 12.3 (as build servers: no status change, no alert)
    host_id, name = await rig.add_host(status="maintenance")
    rig.probe.script(name, [False, False, True])
    monitor = rig.monitor(limit=1)
    for failures in (1, 2):
        (result,) = await monitor.check_hosts()
        assert (result.status, result.failures, result.raised) == ("maintenance", failures, ())
    (result,) = await monitor.check_hosts()
    assert (result.status, result.answered) == ("maintenance", True)
    assert await rig.alert("host", host_id) is None
    assert len(await rig.samples(host_id)) == 1
    await rig.set(Host, host_id, status="decommissioned")
    assert await monitor.check_hosts() == []


# -- boards


@PROPERTY
@given(answers=st.lists(st.booleans(), min_size=1, max_size=10), limit=st.integers(1, 3))
async def test_property_13_unreachable_board_recovery_attempt(
    rig: Rig, answers: list[bool], limit: int
) -> None:
    # Validates: 10.3 (property 13): one power cycle per outage, before the board goes offline;
    # a board the cycle brings back stays online. Each probe takes the next answer, the one
    # right after the recovery cycle included (True once they are spent).
    board_id, name = await rig.add_board()
    rig.probe.script(name, answers)
    monitor = rig.monitor(limit=limit)
    script = iter(answers)
    failures, status, attempted, cycles, in_outage = 0, "online", False, 0, 0
    try:
        while rig.probe.left(name):
            answered = next(script)
            results = {r.board_id: r for r in await monitor.check_boards()}
            result = results[board_id]
            if answered:
                failures, attempted, in_outage, status = 0, False, 0, "online"
            else:
                failures += 1
                if failures >= limit and status == "online":
                    if not attempted:
                        attempted, cycles, in_outage = True, cycles + 1, in_outage + 1
                        if next(script, True):  # the probe after the cycle
                            failures, attempted, in_outage = 0, False, 0
                        else:
                            failures, status = failures + 1, "offline"
                    else:
                        status = "offline"
            assert await rig.cycles(board_id) == cycles
            assert in_outage <= 1
            assert (result.status, result.failures) == (status, failures)
            board = await rig.get(Board, board_id)
            health = await rig.get(BoardHealth, board_id)
            assert (board.status, health.consecutive_failures, health.reachable) == (
                status,
                failures,
                failures == 0,
            )
            assert (health.recovery_attempted_at is not None) == attempted
            alert = await rig.alert("board", board_id)
            if status == "offline":
                # Offline only after this outage's one recovery cycle, which did not bring it back.
                assert in_outage == 1
                assert alert is not None and alert.state == "open"
                assert (
                    "nor after a power cycle" in alert.message or "nor since the power cycle" in alert.message
                )
            else:
                assert alert is None or alert.state == "resolved"
    finally:
        await rig.set(Board, board_id, status="decommissioned")


async def test_a_recovery_cycle_that_brings_the_board_back_keeps_it_online(rig: Rig) -> None:
    # Validates: 10.3, 18.4
    board_id, name = await rig.add_board()
    outlet = rig.hardware.powers[board_id]
    rig.probe.script(name, [False, False, True])
    monitor = rig.monitor(limit=2)
    (first,) = await monitor.check_boards()
    assert (first.status, first.failures, first.needs_recovery) == ("online", 1, False)
    (second,) = await monitor.check_boards()
    assert (second.status, second.failures, second.answered) == ("online", 0, True)
    assert second.recovery is not None
    assert outlet.calls == ["off", "on"]  # type: ignore[attr-defined]
    async with rig.sessions() as session:
        cycle = await session.get(PowerAction, second.recovery)
        assert cycle is not None
        assert (cycle.action, cycle.requested_by, cycle.status, cycle.boot_seen) == (
            "cycle",
            "labfleet",
            "succeeded",
            True,
        )
    health = await rig.get(BoardHealth, board_id)
    assert (health.reachable, health.recovery_attempted_at, health.power_state) == (True, None, "on")
    assert await rig.alert("board", board_id) is None


async def test_a_board_without_power_control_goes_offline_at_once(rig: Rig) -> None:
    # Validates: 10.3 (nothing to recover it with), 16.1
    board_id, name = await rig.add_board(powered=False)
    rig.probe.script(name, [False, True])
    (result,) = await rig.monitor(limit=1).check_boards()
    assert (result.status, result.raised, result.recovery) == ("offline", ("unreachable",), None)
    alert = await rig.alert("board", board_id)
    assert alert is not None and "it has no power control to recover it" in alert.message
    (back,) = await rig.monitor(limit=1).check_boards()
    assert (back.previous_status, back.status, back.resolved) == ("offline", "online", ("unreachable",))


async def test_a_busy_board_is_recovered_at_the_next_round(rig: Rig) -> None:
    # Validates: 10.3 (the power service's lock is respected: no cycle while another action runs)
    board_id, name = await rig.add_board()
    rig.probe.script(name, [False, False, False])
    monitor = rig.monitor(limit=1)
    async with (
        rig.sessions() as session,
        device_lock(session=session, kind="board", ident=board_id, what="a flash by bob"),
    ):
        (busy,) = await monitor.check_boards()
    assert (busy.status, busy.needs_recovery, busy.recovery) == ("online", True, None)
    assert await rig.cycles(board_id) == 0
    assert (await rig.get(BoardHealth, board_id)).recovery_attempted_at is None
    (result,) = await monitor.check_boards()
    assert await rig.cycles(board_id) == 1
    assert (result.status, result.failures, result.raised) == ("offline", 3, ("unreachable",))


async def test_a_hot_board_is_degraded_and_a_very_hot_one_offline(rig: Rig) -> None:
    # Validates: 10.1, 10.4
    board_id, name = await rig.add_board(
        labels={"temperature-command": "/sys/class/thermal/thermal_zone0/temp"}
    )
    monitor = rig.monitor()
    rig.probe.readings[name] = "85000\n"  # millidegrees, as sysfs says it
    (result,) = await monitor.check_boards()
    assert rig.probe.commands[-1] == "cat /sys/class/thermal/thermal_zone0/temp"
    assert (result.temperature_c, result.status, result.raised) == (85.0, "degraded", ("temperature",))
    alert = await rig.alert("board", board_id, "temperature")
    assert alert is not None and alert.severity == "warning"
    assert "85 °C, at or above its warning threshold of 80 °C; it is degraded" in alert.message
    assert (await rig.get(BoardHealth, board_id)).temperature_c == 85.0

    # Lab-wide thresholds (health_thresholds) win over the defaults.
    async with rig.sessions() as session:
        session.add(
            HealthThreshold(resource_kind="board", metric="temperature_c", warning=90.0, critical=100.0)
        )
        await session.commit()
    (result,) = await monitor.check_boards()
    assert (result.previous_status, result.status, result.resolved) == (
        "degraded",
        "online",
        ("temperature",),
    )
    rig.probe.readings[name] = "101.5"
    (result,) = await monitor.check_boards()
    assert (result.status, result.raised) == ("offline", ("temperature",))
    alert = await rig.alert("board", board_id, "temperature")
    assert alert is not None and alert.severity == "critical" and alert.occurrences == 1

    # A reading that is no number is a problem, not a failed check; the status stays as it is.
    rig.probe.readings[name] = "N/A"
    (result,) = await monitor.check_boards()
    assert (result.answered, result.temperature_c, result.status) == (True, None, "online")
    assert result.error is not None and "printed no number" in result.error
    assert (await rig.get(BoardHealth, board_id)).temperature_c == 101.5


async def test_boards_without_a_temperature_source_are_not_asked(rig: Rig) -> None:
    await rig.add_board()
    (result,) = await rig.monitor().check_boards()
    assert (result.answered, result.temperature_c, result.error) == (True, None, None)
    assert rig.probe.commands == []


async def test_the_power_state_is_read_and_unknown_is_no_failure(rig: Rig) -> None:
    # Validates: 10.1, 18.3 (pdudaemon cannot tell: "unknown" is recorded, the check passes)
    board_id, _ = await rig.add_board()
    (result,) = await rig.monitor().check_boards()
    assert result.power_state == "off"  # the fake outlet starts off
    rig.hardware.powers[board_id] = UnknownPower()
    (result,) = await rig.monitor().check_boards()
    assert (result.answered, result.status, result.power_state) == (True, "online", "unknown")
    health = await rig.get(BoardHealth, board_id)
    assert (health.power_state, health.reachable, health.last_error) == ("unknown", True, None)
    async with rig.sessions() as session:
        reads = await session.scalars(
            select(PowerAction.requested_by).where(
                PowerAction.board_id == board_id, PowerAction.action == "state"
            )
        )
        assert list(reads) == ["labfleet", "labfleet"]


async def test_maintenance_boards_are_checked_never_cycled_and_flashing_ones_not_checked(rig: Rig) -> None:
    # Validates: 12.1, 12.2, 6.2
    kept, kept_name = await rig.add_board(status="maintenance")
    flashing, flashing_name = await rig.add_board(status="flashing")
    rig.probe.script(kept_name, [False, False])
    monitor = rig.monitor(limit=1)
    for failures in (1, 2):
        (result,) = await monitor.check_boards()
        assert (result.board_id, result.status, result.failures) == (kept, "maintenance", failures)
        assert (result.needs_recovery, result.raised) == (False, ())
    assert await rig.cycles(kept) == 0
    assert await rig.alert("board", kept) is None
    assert flashing_name not in rig.probe.asked
    assert await rig.get(BoardHealth, flashing) is None


async def test_the_engine_runs_host_and_board_checks(rig: Rig) -> None:
    # Validates: 9.2, 10.2 (wired into Engine, every health_interval_s)
    host_id, _ = await rig.add_host()
    board_id, _ = await rig.add_board()
    engine = Engine(
        sessions=rig.sessions,
        bus=rig.bus,
        store=LocalStore(rig.tmp / "store"),
        secrets=BOX,
        settings=EngineSettings(health_interval_s=0.2, power=POWER),
        probe=rig.probe,
        hardware=rig.hardware,
    )
    async with engine, asyncio.timeout(30):
        # Polls the database.
        while not await rig.samples(host_id) or not await rig.board_checked(board_id):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    health = await rig.get(BoardHealth, board_id)
    assert (health.reachable, health.consecutive_failures) == (True, 0)
    assert (await rig.get(Host, host_id)).cpu_cores == 8


async def test_without_power_access_an_unreachable_board_goes_offline_uncycled(rig: Rig) -> None:
    # Device checks given a probe but no power hardware: nothing to recover with.
    board_id, name = await rig.add_board()
    rig.probe.script(name, [False])
    monitor = ResourceHealthMonitor(
        sessions=rig.sessions,
        bus=rig.bus,
        secrets=BOX,
        hosts=rig.probe,
        boards=rig.probe,
        hardware=None,
        host_policy=HostHealthPolicy(),
        board_policy=BoardHealthPolicy(failure_limit=1),
        power_policy=POWER,
        interval_s=0.0,
    )
    (result,) = await monitor.check_boards()
    assert (result.status, result.needs_recovery, result.power_state) == ("offline", False, None)
    alert = await rig.alert("board", board_id)
    assert alert is not None and "no power cycle was tried" in alert.message
    assert await rig.cycles(board_id) == 0
