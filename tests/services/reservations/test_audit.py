"""Releases that labfleet makes on its own (an environment torn down, an expiry) are audited as
its own, with the reason, as a person's release is.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import AuditEntry
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.reservations import ReservationCreate
from labfleet.services.reservations import service as reservations
from tests.api.test_reservations_api import add_board, add_host

ALICE = Actor(name="alice", role=Role.operator)


async def entries(session: AsyncSession, ident: int) -> list[AuditEntry]:
    found = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.object_type == "reservation", AuditEntry.object_id == ident)
        .order_by(AuditEntry.id)
    )
    return list(found)


async def reserve(session: AsyncSession, seconds: int, **target: int) -> int:
    data = ReservationCreate.model_validate({**target, "purpose": "bisect", "expires_in_s": seconds})
    r = await reservations.reserve(session=session, actor=ALICE, data=data)
    await session.commit()
    return r.id


async def test_a_release_on_behalf_of_an_environment_is_audited_with_its_reason(
    session: AsyncSession,
) -> None:
    ident = await reserve(session, 600, board_id=await add_board(session))
    assert await reservations.release_for(session=session, ident=ident, reason="environment #7 released")
    assert not await reservations.release_for(session=session, ident=ident, reason="again")
    await session.commit()
    [created, released] = await entries(session, ident)
    assert (created.action, created.actor) == ("create", "alice")
    assert (released.action, released.actor) == ("release", "labfleet")
    assert released.before is not None and released.before["released_at"] is None
    assert released.after is not None and released.after["release_reason"] == "environment #7 released"


async def test_each_expired_reservation_is_audited_once(session: AsyncSession) -> None:
    host = await reserve(session, 60, host_id=await add_host(session), vcpus=1)
    board = await reserve(session, 60, board_id=await add_board(session))
    later = utcnow() + timedelta(seconds=120)
    assert sorted(await reservations.expire_due(session=session, now=later)) == sorted([host, board])
    assert await reservations.expire_due(session=session, now=later) == []
    await session.commit()
    for ident in (host, board):
        actions = [(e.action, e.actor) for e in await entries(session, ident)]
        assert actions == [("create", "alice"), ("expire", "labfleet")]
        expired = (await entries(session, ident))[-1]
        assert expired.after is not None and expired.after["release_reason"] == "expired"
