"""Board power as a service, on SQLite and PostgreSQL, with fake outlets and consoles.

Every action recorded (18.4), the cycle's retries and the board marked failed (18.2,
property 16), state reads (18.3), alerts for controllers that do not answer (18.5), one
operation per board at a time (in this process and across processes), and actions left
running by a dead process failed with the reason.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Alert, AuditEntry, Board, PowerAction
from labfleet.errors import CommandFailed, Conflict, Unreachable
from labfleet.hw.fakes import FakePower
from labfleet.hw.power import PowerState
from labfleet.schemas.auth import Actor
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.enums import Role
from labfleet.schemas.power import PowerCycleIn
from labfleet.secretbox import SecretBox
from labfleet.services.core.device_locks import device_lock
from labfleet.services.inventory import boards
from labfleet.services.inventory.registration import InputOnly
from labfleet.services.power import history, service
from labfleet.services.power.access import DeviceAccess
from labfleet.services.power.ending import BOOT_FAILED, POWER_CONTROLLER
from labfleet.services.power.service import PowerPolicy
from tests.power_fakes import BANNER, FakeHardware

BOX = SecretBox(Fernet.generate_key())
ANA = Actor(name="ana", role=Role.operator, team="kernel")
BOB = Actor(name="bob", role=Role.operator)
POLICY = PowerPolicy(off_s=0.0, boot_timeout_s=1.0, attempts=3, command_timeout_s=5.0)
_names = itertools.count(1)


async def new_board(session: AsyncSession, *, power: bool = True, status: str | None = None) -> Board:
    n = next(_names)
    data = BoardCreate.model_validate(
        {
            "name": f"pwr-{n}",
            "board_type": "fake",
            "architecture": "arm64",
            "serial_number": f"PWR-{n}",
            "console_url": "socket://127.0.0.1:1",
            "labels": {"boot-pattern": BANNER},
            **({"power": {"driver": "command", "on": "true", "off": "true"}} if power else {}),
        }
    )
    board = await boards.register(session=session, actor=ANA, secrets=BOX, validator=InputOnly(), data=data)
    if status is not None:
        board.status = status
    await session.commit()
    return board


async def open_alert(session: AsyncSession, board_id: int, kind: str) -> Alert | None:
    stmt = select(Alert).where(
        Alert.resource_kind == "board",
        Alert.resource_id == board_id,
        Alert.kind == kind,
        Alert.state != "resolved",
    )
    return (await session.scalars(stmt.execution_options(populate_existing=True))).first()


async def status_of(session: AsyncSession, board_id: int) -> str:
    value = await session.scalar(select(Board.status).where(Board.id == board_id))
    assert value is not None
    return value


PROPERTY = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(
    attempts=st.integers(min_value=1, max_value=4),
    boots=st.lists(st.booleans(), max_size=5),
    start=st.sampled_from(["online", "degraded", "offline", "failed", "maintenance"]),
)
async def test_property_16_power_cycle_recovery_sequence(
    session: AsyncSession, attempts: int, boots: list[bool], start: str
) -> None:
    # Validates: 18.2, 18.4 (property 16)
    board = await new_board(session, status=start)
    hardware = FakeHardware()
    outlet = hardware.board(board.id, boots=boots)

    action = await service.cycle(
        session=session,
        actor=ANA,
        hardware=hardware,
        board_id=board.id,
        policy=POLICY,
        options=PowerCycleIn(retries=attempts),
    )

    outcomes = [*boots, True][:attempts]
    booted = True in outcomes
    tries = outcomes.index(True) + 1 if booted else attempts
    assert outlet.calls == ["off", "on"] * tries
    assert (action.action, action.attempts, action.max_attempts) == ("cycle", tries, attempts)
    assert action.status == ("succeeded" if booted else "failed")
    assert action.boot_seen is booted
    assert [a["boot_seen"] for a in action.detail["attempts"]] == outcomes[:tries]
    alert = await open_alert(session, board.id, BOOT_FAILED)
    if booted:
        assert await status_of(session, board.id) == ("online" if start == "failed" else start)
        assert alert is None
    else:
        assert await status_of(session, board.id) == ("maintenance" if start == "maintenance" else "failed")
        assert alert is not None and alert.severity == "critical"
        assert f"in {attempts} attempt(s)" in (action.error or "")


async def test_a_board_that_boots_again_is_back_online_and_its_alert_resolved(session: AsyncSession) -> None:
    # Validates: 18.2, 16.3
    board = await new_board(session)
    hardware = FakeHardware()
    hardware.board(board.id, boots=[False, False, True])
    options = PowerCycleIn(retries=2)
    first = await service.cycle(
        session=session, actor=ANA, hardware=hardware, board_id=board.id, policy=POLICY, options=options
    )
    assert first.status == "failed" and await status_of(session, board.id) == "failed"
    assert await open_alert(session, board.id, BOOT_FAILED) is not None
    second = await service.cycle(
        session=session, actor=BOB, hardware=hardware, board_id=board.id, policy=POLICY, options=options
    )
    assert second.status == "succeeded" and second.attempts == 1
    assert await status_of(session, board.id) == "online"
    assert await open_alert(session, board.id, BOOT_FAILED) is None
    changes = list(
        await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.object_type == "board", AuditEntry.object_id == board.id)
            .where(AuditEntry.action == "update")
            .order_by(AuditEntry.id)
        )
    )
    assert [(c.actor, c.before, c.after) for c in changes] == [
        ("ana", {"status": "online"}, {"status": "failed"}),
        ("bob", {"status": "failed"}, {"status": "online"}),
    ]


async def test_every_action_is_recorded_with_who_when_and_the_result(session: AsyncSession) -> None:
    # Validates: 18.1, 18.3, 18.4
    board = await new_board(session)
    hardware = FakeHardware()
    outlet = hardware.board(board.id)
    await service.switch(
        session=session, actor=ANA, hardware=hardware, board_id=board.id, state="on", policy=POLICY
    )
    read = await service.read_state(
        session=session, actor=BOB, hardware=hardware, board_id=board.id, policy=POLICY
    )
    assert read.power_state == "on" and read.status == "succeeded"
    await service.switch(
        session=session, actor=ANA, hardware=hardware, board_id=board.id, state="off", policy=POLICY
    )
    await service.cycle(session=session, actor=ANA, hardware=hardware, board_id=board.id, policy=POLICY)
    assert outlet.calls == ["on", "off", "off", "on"]

    total, rows = await history.history(session=session, board_id=board.id)
    assert total == 4
    assert [(r.action, r.requested_by, r.status, r.power_state) for r in rows] == [
        ("cycle", "ana", "succeeded", "on"),
        ("off", "ana", "succeeded", "off"),
        ("state", "bob", "succeeded", "on"),
        ("on", "ana", "succeeded", "on"),
    ]
    for row in rows:
        assert row.finished_at is not None and row.finished_at >= row.started_at
        assert row.duration_s is not None and row.duration_s >= 0
        assert row.team == ("kernel" if row.requested_by == "ana" else None)
    assert rows[0].boot_seen is True and rows[0].detail["attempts"][0]["seen"] == BANNER
    assert rows[0].detail["boot_pattern"] == BANNER  # the board's boot-pattern label
    total, page = await history.history(
        session=session, board_id=board.id, actions=["on", "off"], limit=1, offset=1
    )
    assert total == 2 and [r.action for r in page] == ["on"]


async def test_a_controller_that_cannot_tell_names_the_last_switch(session: AsyncSession) -> None:
    # Validates: 18.3
    class Blind(FakePower):
        async def state(self, *, timeout: float) -> PowerState:
            return PowerState.UNKNOWN

    board = await new_board(session)
    hardware = FakeHardware(powers={board.id: Blind()})
    off = await service.switch(session=session, actor=ANA, hardware=hardware, board_id=board.id, state="off")
    read = await service.read_state(session=session, actor=ANA, hardware=hardware, board_id=board.id)
    assert read.power_state == "unknown"
    assert read.detail["last_switched"]["power_state"] == "off"
    assert read.detail["last_switched"]["action"] == off.id


async def test_a_controller_that_does_not_answer_raises_an_alert_until_it_answers(
    session: AsyncSession,
) -> None:
    # Validates: 18.5, 16.2
    board = await new_board(session)
    outlet = FakePower(fail_with=Unreachable("pdudaemon http://pdu:16421: connection refused"))
    hardware = FakeHardware(powers={board.id: outlet}, consoles={board.id: None})
    for _ in range(2):
        action = await service.switch(
            session=session, actor=ANA, hardware=hardware, board_id=board.id, state="on", policy=POLICY
        )
        assert action.status == "failed" and "connection refused" in (action.error or "")
    alert = await open_alert(session, board.id, POWER_CONTROLLER)
    assert alert is not None and alert.severity == "critical" and alert.occurrences == 2
    assert "does not answer" in alert.message
    cycled = await service.cycle(
        session=session, actor=ANA, hardware=hardware, board_id=board.id, policy=POLICY
    )
    assert cycled.status == "failed" and cycled.attempts == 1
    assert await status_of(session, board.id) == "online"  # the controller failed, not the board

    outlet.fail_with = None
    action = await service.switch(
        session=session, actor=ANA, hardware=hardware, board_id=board.id, state="on"
    )
    assert action.status == "succeeded"
    assert await open_alert(session, board.id, POWER_CONTROLLER) is None


async def test_a_controller_that_answers_with_an_error_raises_a_warning(session: AsyncSession) -> None:
    # Validates: 18.5
    board = await new_board(session)
    outlet = FakePower(fail_with=CommandFailed("relay: `on` exited with 3", exit_status=3))
    hardware = FakeHardware(powers={board.id: outlet})
    action = await service.switch(
        session=session, actor=ANA, hardware=hardware, board_id=board.id, state="on"
    )
    assert action.status == "failed"
    alert = await open_alert(session, board.id, POWER_CONTROLLER)
    assert alert is not None and alert.severity == "warning"


@pytest.mark.parametrize("status", ["flashing", "decommissioned"])
async def test_a_board_being_flashed_or_decommissioned_refuses_power_actions(
    session: AsyncSession, status: str
) -> None:
    # Validates: 6.2
    board_id = (await new_board(session, status=status)).id
    hardware = FakeHardware()
    outlet = hardware.board(board_id)
    with pytest.raises(Conflict, match=f"refuses power actions: it is .*{status[:5]}"):
        await service.cycle(session=session, actor=ANA, hardware=hardware, board_id=board_id)
    await session.rollback()
    assert outlet.calls == []
    assert (await history.history(session=session, board_id=board_id))[0] == 0


async def test_a_board_without_power_wiring_is_a_conflict(session: AsyncSession) -> None:
    board = await new_board(session, power=False)
    async with DeviceAccess(BOX) as hardware:
        with pytest.raises(Conflict, match="no power control") as info:
            await service.switch(session=session, actor=ANA, hardware=hardware, board_id=board.id, state="on")
    assert info.value.field == "power"


# -- one operation per board, across sessions and processes: databases of their own


@pytest.fixture
async def sessions(fresh_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(fresh_db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def test_a_second_operation_on_a_busy_board_is_refused_naming_the_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        board = await new_board(s)
        other = await new_board(s)
    hardware = FakeHardware()
    outlet = hardware.board(board.id)
    outlet.hold = asyncio.Event()
    hardware.board(other.id)

    async def cycling() -> PowerAction:
        async with sessions() as s:
            return await service.cycle(
                session=s, actor=ANA, hardware=hardware, board_id=board.id, policy=POLICY
            )

    first = asyncio.create_task(cycling())
    await asyncio.wait_for(outlet.entered.wait(), 10)
    async with sessions() as s:
        with pytest.raises(Conflict, match=f"busy: power cycle of board {board.name} by ana is running"):
            await service.switch(session=s, actor=BOB, hardware=hardware, board_id=board.id, state="on")
        # Another board is not held up.
        done = await service.switch(session=s, actor=BOB, hardware=hardware, board_id=other.id, state="on")
        assert done.status == "succeeded"
        running = await s.scalar(select(PowerAction).where(PowerAction.board_id == board.id))
        assert running is not None and running.status == "running"
    outlet.hold.set()
    assert (await first).status == "succeeded"
    async with sessions() as s:
        again = await service.switch(session=s, actor=BOB, hardware=hardware, board_id=board.id, state="on")
        assert again.status == "succeeded"


def _hold_elsewhere(url: str, board_id: int, holding: threading.Event, release: threading.Event) -> None:
    """Another labfleet process: its own event loop and engine, holding the board's lock."""

    async def main() -> None:
        engine = create_engine(url)
        try:
            async with (
                session_factory(engine)() as s,
                device_lock(session=s, kind="board", ident=board_id, what="flash of board x by carol"),
            ):
                holding.set()
                await asyncio.to_thread(release.wait, 30)
        finally:
            await engine.dispose()

    asyncio.run(main())


async def test_another_process_holding_the_board_is_named(
    sessions: async_sessionmaker[AsyncSession], fresh_db_url: str, backend: str
) -> None:
    async with sessions() as s:
        board = await new_board(s)
    hardware = FakeHardware()
    hardware.board(board.id)
    if backend == "postgresql":
        # The advisory lock, taken by a process that is not flashing through power actions at all.
        holding, release = threading.Event(), threading.Event()
        thread = threading.Thread(target=_hold_elsewhere, args=(fresh_db_url, board.id, holding, release))
        thread.start()
        try:
            assert await asyncio.to_thread(holding.wait, 20)
            async with sessions() as s:
                with pytest.raises(Conflict, match="busy: flash of board x by carol is running"):
                    await service.switch(
                        session=s, actor=ANA, hardware=hardware, board_id=board.id, state="on"
                    )
        finally:
            release.set()
            await asyncio.to_thread(thread.join, 20)
    # A running action of another process (on SQLite the index is what keeps processes apart).
    async with sessions() as s:
        s.add(
            PowerAction(
                board_id=board.id,
                action="cycle",
                requested_by="dave",
                holder="other-host:4242",
                started_at=utcnow(),
                deadline_at=utcnow() + timedelta(minutes=10),
            )
        )
        await s.commit()
    async with sessions() as s:
        if backend == "sqlite":
            with pytest.raises(Conflict, match=r"busy: power cycle #\d+ by dave since"):
                await service.switch(session=s, actor=ANA, hardware=hardware, board_id=board.id, state="on")
            await s.rollback()
            await s.execute(update(PowerAction).values(deadline_at=utcnow() - timedelta(seconds=1)))
            await s.commit()
        # Past its deadline (SQLite), or not holding the lock we now hold (PostgreSQL): abandoned.
        action = await service.switch(session=s, actor=ANA, hardware=hardware, board_id=board.id, state="on")
        assert action.status == "succeeded"
        left = await s.scalar(select(PowerAction).where(PowerAction.requested_by == "dave"))
        assert left is not None and left.status == "failed"
        assert left.error == "no result: the labfleet process running it stopped before it finished " + (
            "(process other-host:4242)"
        )


async def test_an_action_left_running_past_its_deadline_is_failed_with_the_reason(
    session: AsyncSession,
) -> None:
    board = await new_board(session)
    session.add(
        PowerAction(
            board_id=board.id,
            action="cycle",
            requested_by="dave",
            holder="gone:1",
            started_at=utcnow() - timedelta(hours=1),
            deadline_at=utcnow() - timedelta(minutes=1),
        )
    )
    await session.flush()
    total, rows = await history.history(session=session, board_id=board.id)
    assert total == 1 and rows[0].status == "failed" and rows[0].finished_at is not None
    assert "stopped before it finished (process gone:1)" in (rows[0].error or "")


async def test_a_cancelled_action_is_recorded_as_interrupted_and_frees_the_board(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        board = await new_board(s)
    hardware = FakeHardware()
    outlet = hardware.board(board.id)
    outlet.hold = asyncio.Event()

    async def cycling() -> PowerAction:
        async with sessions() as s:
            return await service.cycle(
                session=s, actor=ANA, hardware=hardware, board_id=board.id, policy=POLICY
            )

    task = asyncio.create_task(cycling())
    await asyncio.wait_for(outlet.entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with sessions() as s:
        row = await s.scalar(select(PowerAction).where(PowerAction.board_id == board.id))
        assert row is not None and row.status == "failed" and "interrupted" in (row.error or "")
        outlet.hold = None
        again = await service.switch(session=s, actor=ANA, hardware=hardware, board_id=board.id, state="on")
        assert again.status == "succeeded"


async def test_the_boot_pattern_comes_from_the_request_then_the_label_then_the_default(
    session: AsyncSession,
) -> None:
    board = await new_board(session)
    hardware = FakeHardware()
    hardware.board(board.id)
    asked = await service.cycle(
        session=session,
        actor=ANA,
        hardware=hardware,
        board_id=board.id,
        policy=POLICY,
        options=PowerCycleIn(boot_pattern=r"fake boot(ed)?"),
    )
    assert asked.detail["boot_pattern"] == r"fake boot(ed)?" and asked.boot_seen
    bare = await new_board(session)
    await boards.update(
        session=session,
        actor=ANA,
        secrets=BOX,
        ident=bare.id,
        data=boards.BoardUpdate(labels={}),
    )
    await session.commit()
    hardware.board(bare.id)
    default = await service.cycle(
        session=session, actor=ANA, hardware=hardware, board_id=bare.id, policy=POLICY
    )
    assert default.detail["boot_pattern"] == service.DEFAULT_BOOT_PATTERN
    assert default.boot_seen  # the fake's shell prompt ("/ # ") matches the default
    assert re.search(service.DEFAULT_BOOT_PATTERN, "Kernel panic - not syncing: VFS\r\n") is None
