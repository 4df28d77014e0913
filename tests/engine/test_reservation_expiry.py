"""The engine releases expired reservations by itself: a cancelled CI job never holds a board forever.

Validates: 11.5
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from labfleet.db.base import utcnow
from labfleet.db.models import Board, Reservation
from tests.engine.conftest import Rig


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
