"""Property 19: decommissioning requires no active workload.

For any mix of reservations on a host or board (held, released, expired) and, for a board,
a flash in progress or not, decommissioning succeeds exactly when nothing is active there;
a refusal names what holds it and changes nothing.

Validates: 12.4, 12.5
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Board, Host, Reservation
from labfleet.errors import Conflict
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import BoardStatus, ServerStatus
from labfleet.services.inventory import boards, hosts
from tests.helpers import example

RESERVATION = st.sampled_from(["held", "released", "expired"])
DB = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _reservation(kind: str, *, host_id: int | None = None, board_id: int | None = None) -> Reservation:
    now = utcnow()
    return Reservation(
        host_id=host_id,
        board_id=board_id,
        owner="ci",
        expires_at=now + timedelta(hours=1) if kind != "expired" else now - timedelta(seconds=1),
        released_at=now if kind == "released" else None,
    )


@DB
@given(kinds=st.lists(RESERVATION, max_size=4))
async def test_property_19_a_host_is_decommissioned_only_when_nothing_holds_it(
    session: AsyncSession, kinds: list[str]
) -> None:
    async with example(session):
        host = Host(hostname="kvm-p19", address="kvm-p19.lab", ssh_user="root", libvirt_uri="qemu:///system")
        session.add(host)
        await session.flush()
        session.add_all([_reservation(k, host_id=host.id) for k in kinds])
        await session.flush()
        if "held" in kinds:
            with pytest.raises(Conflict, match="reservation #"):
                await hosts.set_status(
                    session=session, actor=SYSTEM, ident=host.id, status=ServerStatus.decommissioned
                )
            assert (await hosts.get(session=session, ident=host.id)).status == "online"
        else:
            await hosts.set_status(
                session=session, actor=SYSTEM, ident=host.id, status=ServerStatus.decommissioned
            )
            assert (await hosts.get(session=session, ident=host.id)).status == "decommissioned"


@DB
@given(kinds=st.lists(RESERVATION, max_size=4), flashing=st.booleans())
async def test_property_19_a_board_is_decommissioned_only_when_nothing_holds_it(
    session: AsyncSession, kinds: list[str], flashing: bool
) -> None:
    async with example(session):
        board = Board(
            name="rpi-p19",
            board_type="rpi4",
            architecture="arm64",
            serial_number="sn-p19",
            status="flashing" if flashing else "online",
        )
        session.add(board)
        await session.flush()
        # At most one unreleased reservation per board (the database allows no more).
        seen_unreleased = False
        rows = []
        for k in kinds:
            if k != "released":
                if seen_unreleased:
                    continue
                seen_unreleased = True
            rows.append(_reservation(k, board_id=board.id))
        session.add_all(rows)
        await session.flush()
        kinds_kept = ["held" for r in rows if r.released_at is None and r.expires_at > utcnow()]
        before = board.status
        if kinds_kept or flashing:
            with pytest.raises(Conflict, match=r"reservation #|being flashed"):
                await boards.set_status(
                    session=session, actor=SYSTEM, ident=board.id, status=BoardStatus.decommissioned
                )
            assert (await boards.get(session=session, ident=board.id)).status == before
        else:
            await boards.set_status(
                session=session, actor=SYSTEM, ident=board.id, status=BoardStatus.decommissioned
            )
            assert (await boards.get(session=session, ident=board.id)).status == "decommissioned"
