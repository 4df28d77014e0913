"""A resource that something still refers to cannot be deleted; nothing changes."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Reservation
from tests.factories import board


async def test_deleting_a_reserved_board_is_409(client: httpx.AsyncClient, session: AsyncSession) -> None:
    created = (await client.post("/api/v1/boards", json=board())).json()
    held = Reservation(board_id=created["id"], owner="ci", expires_at=utcnow() + timedelta(hours=1))
    session.add(held)
    await session.commit()
    held_id = held.id
    r = await client.delete(created["url"])
    assert r.status_code == 409
    assert (
        r.json()["detail"]
        == f"cannot remove board {created['id']}: reservation #{held_id} holds it; release it first"
    )
    assert (await client.get(created["url"])).json() == created

    # Released, it stays in the board's history: the board can be decommissioned, not removed.
    await session.execute(update(Reservation).where(Reservation.id == held_id).values(released_at=utcnow()))
    await session.commit()
    r = await client.delete(created["url"])
    assert r.status_code == 409
    assert "in use" in r.json()["detail"]
