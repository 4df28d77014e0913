"""Power as a service against the virtual lab: a board switched and power-cycled through the real
pdudaemon, its boot seen on its real console (ser2net, RFC 2217), every action recorded; a
wrong PDU address or name fails the action and raises an alert.

Validates: 18.1, 18.2, 18.3, 18.4, 18.5
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Alert, Board
from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.lab import pdu, procs
from labfleet.lab.layout import Board as LabBoard
from labfleet.schemas.auth import Actor
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.enums import Role
from labfleet.schemas.power import PowerCycleIn
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import boards
from labfleet.services.inventory.registration import InputOnly
from labfleet.services.power import history as power_history
from labfleet.services.power import service as power
from labfleet.services.power.access import DeviceAccess
from labfleet.services.power.ending import POWER_CONTROLLER
from labfleet.services.power.service import PowerPolicy
from tests.lab.conftest import VirtualLab, on

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())
OPERATOR = Actor(name="lab-operator", role=Role.operator)
POLICY = PowerPolicy(off_s=1.0, boot_timeout_s=120.0, attempts=2, command_timeout_s=60.0)
NAME = "lab-arm64"


def powered(lab: VirtualLab, name: str) -> bool:
    return lab.status().part(name).running


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def register(session: AsyncSession, lab: VirtualLab, board: LabBoard, **power_: Any) -> Board:
    """The lab's board as labfleet keeps it, its boot banner as its boot pattern."""
    wiring = {"driver": "pdudaemon", "url": lab.pdu_url, "pdu": lab.pdu_name, "outlet": board.outlet}
    data = BoardCreate.model_validate(
        {
            "name": board.name,
            "board_type": board.board_type,
            "architecture": board.architecture,
            "serial_number": board.serial_number,
            "console_url": board.console_url,
            "power": {**wiring, **power_},
            "labels": {"boot-pattern": board.banner},
        }
    )
    row = await boards.register(
        session=session, actor=OPERATOR, secrets=BOX, validator=InputOnly(), data=data
    )
    await session.commit()
    return row


@pytest.fixture
async def left_on(lab: VirtualLab) -> AsyncIterator[LabBoard]:
    """The board, powered and booted again at the end whatever happened, as it was found."""
    board = lab.board(NAME)
    yield board
    if not powered(lab, board.name):
        async with SerialConsole(ConsolePort(url=board.console_url), name=board.name) as console:
            async with httpx.AsyncClient(timeout=60) as http:
                response = await http.get(
                    f"{lab.pdu_url}/power/control/on", params={"hostname": lab.pdu_name, "port": board.outlet}
                )
                response.raise_for_status()
            await console.expect(board.banner, timeout=120)


@on("postgresql")
async def test_a_power_cycle_through_pdudaemon_is_watched_on_the_console_and_recorded(
    lab: VirtualLab, session: AsyncSession, left_on: LabBoard
) -> None:
    # Validates: 18.1, 18.2, 18.3, 18.4
    board = left_on
    row = await register(session, lab, board)
    async with DeviceAccess(BOX) as hardware:
        off = await power.switch(
            session=session, actor=OPERATOR, hardware=hardware, board_id=row.id, state="off", policy=POLICY
        )
        assert off.status == "succeeded", off.error
        assert not powered(lab, board.name)

        # pdudaemon cannot tell; labfleet says what it last switched the outlet to.
        state = await power.read_state(
            session=session, actor=OPERATOR, hardware=hardware, board_id=row.id, policy=POLICY
        )
        assert state.power_state == "unknown"
        assert state.detail["last_switched"]["power_state"] == "off"

        cycled = await power.cycle(
            session=session,
            actor=OPERATOR,
            hardware=hardware,
            board_id=row.id,
            policy=POLICY,
            options=PowerCycleIn(off_s=1.0),
        )
    assert cycled.status == "succeeded", cycled.error
    assert (cycled.boot_seen, cycled.attempts, cycled.power_state) == (True, 1, "on")
    assert cycled.detail["attempts"][0]["seen"] == board.banner
    assert powered(lab, board.name)

    total, rows = await power_history.history(session=session, board_id=row.id)
    assert total == 3
    assert [(r.action, r.status, r.requested_by) for r in rows] == [
        ("cycle", "succeeded", "lab-operator"),
        ("state", "succeeded", "lab-operator"),
        ("off", "succeeded", "lab-operator"),
    ]
    assert all(r.finished_at is not None and r.duration_s is not None for r in rows)
    # Booted for real: its shell answers.
    async with SerialConsole(ConsolePort(url=board.console_url), name=board.name) as console:
        await console.write(b"\r", timeout=10)
        result = await console.run("echo powered-by-labfleet", timeout=30)
    assert result.output.strip() == "powered-by-labfleet"


@on("sqlite")
async def test_a_wrong_pdu_address_fails_the_action_and_raises_an_alert(
    lab: VirtualLab, session: AsyncSession, left_on: LabBoard
) -> None:
    # Validates: 18.5
    board = left_on
    dead = f"http://127.0.0.1:{closed_port()}"
    row = await register(session, lab, board, url=dead)
    async with DeviceAccess(BOX) as hardware:
        action = await power.cycle(
            session=session, actor=OPERATOR, hardware=hardware, board_id=row.id, policy=POLICY
        )
    assert action.status == "failed"
    assert dead in (action.error or "") and action.attempts == 1
    alert = await session.scalar(
        select(Alert).where(
            Alert.resource_id == row.id, Alert.kind == POWER_CONTROLLER, Alert.state == "open"
        )
    )
    assert alert is not None and alert.severity == "critical" and "does not answer" in alert.message
    assert (await session.scalar(select(Board.status).where(Board.id == row.id))) == "online"
    assert powered(lab, board.name)  # nothing reached the board


@on("postgresql")
async def test_a_pdu_that_pdudaemon_does_not_know_fails_the_action_and_raises_an_alert(
    lab: VirtualLab, session: AsyncSession, left_on: LabBoard
) -> None:
    # Validates: 18.5
    board = left_on
    row = await register(session, lab, board, pdu="no-such-pdu")
    async with DeviceAccess(BOX) as hardware:
        action = await power.switch(
            session=session, actor=OPERATOR, hardware=hardware, board_id=row.id, state="on", policy=POLICY
        )
    assert action.status == "failed", action
    assert "no-such-pdu" in (action.error or "")
    alert = await session.scalar(
        select(Alert).where(
            Alert.resource_id == row.id, Alert.kind == POWER_CONTROLLER, Alert.state == "open"
        )
    )
    assert alert is not None
    assert powered(lab, board.name)


async def test_pdudaemon_stopped_then_started_raises_then_resolves_the_power_controller_alert(
    lab: VirtualLab, session: AsyncSession, left_on: LabBoard
) -> None:
    # Validates: 18.5 (the daemon itself down, not a wrong address)
    board = left_on
    row = await register(session, lab, board)
    try:
        await asyncio.to_thread(procs.stop, pdu.daemon(lab.paths))
        async with DeviceAccess(BOX) as hardware:
            failed = await power.switch(
                session=session, actor=OPERATOR, hardware=hardware, board_id=row.id, state="on", policy=POLICY
            )
        assert failed.status == "failed", failed
        alert = await session.scalar(
            select(Alert).where(
                Alert.resource_id == row.id, Alert.kind == POWER_CONTROLLER, Alert.state == "open"
            )
        )
        assert alert is not None and alert.severity == "critical" and "does not answer" in alert.message
    finally:
        await asyncio.to_thread(pdu.start, lab.paths)
    async with DeviceAccess(BOX) as hardware:
        done = await power.switch(
            session=session, actor=OPERATOR, hardware=hardware, board_id=row.id, state="on", policy=POLICY
        )
    assert done.status == "succeeded", done
    await session.refresh(alert)
    assert (alert.state, alert.resolved_by) == ("resolved", "labfleet")
    assert powered(lab, board.name)
