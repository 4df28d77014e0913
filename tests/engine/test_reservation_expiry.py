"""The engine releases expired reservations by itself: a cancelled CI job never holds a board forever.

Validates: 11.5
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from labfleet.db.base import utcnow
from labfleet.db.models import Board, PowerAction, Reservation
from tests.build_rig import Rig


async def test_expired_reservations_are_released_by_the_engine(rig: Rig) -> None:
    async with rig.sessions() as session:
        board = Board(name="rpi-9", board_type="rpi4", architecture="arm64", serial_number="sn9")
        session.add(board)
        await session.flush()
        gone = Reservation(board_id=board.id, owner="ci-4242", expires_at=utcnow() - timedelta(seconds=1))
        session.add(gone)
        await session.commit()
        gone_id = gone.id
    async with rig.engine(reservation_sweep_s=0.2):
        async with asyncio.timeout(10):
            while True:
                async with rig.sessions() as session:
                    row = await session.get(Reservation, gone_id)
                    assert row is not None
                    if row.released_at is not None:
                        break
                await asyncio.sleep(0.1)
    assert row.release_reason == "expired"


async def test_a_power_action_whose_process_died_is_failed_once_past_its_deadline(rig: Rig) -> None:
    async with rig.sessions() as session:
        board = Board(name="rpi-8", board_type="rpi4", architecture="arm64", serial_number="sn8")
        session.add(board)
        await session.flush()
        now = utcnow()
        dead = PowerAction(
            board_id=board.id,
            action="cycle",
            requested_by="ci",
            holder="gone:1:abcd",
            started_at=now - timedelta(minutes=10),
            deadline_at=now - timedelta(minutes=1),
        )
        alive = PowerAction(
            board_id=board.id,
            action="state",
            status="succeeded",
            requested_by="ci",
            holder="here:2:abcd",
            deadline_at=now + timedelta(minutes=5),
        )
        session.add_all([dead, alive])
        await session.commit()
        dead_id, alive_id = dead.id, alive.id
    async with rig.engine(reservation_sweep_s=0.2):
        async with asyncio.timeout(10):
            while True:
                async with rig.sessions() as session:
                    row = await session.get(PowerAction, dead_id)
                    assert row is not None
                    if row.status != "running":
                        break
                await asyncio.sleep(0.1)
    assert row.status == "failed"
    assert row.error
    assert "gone:1:abcd" in row.error
    async with rig.sessions() as session:
        other = await session.get(PowerAction, alive_id)
        assert other is not None
        assert other.status == "succeeded"
