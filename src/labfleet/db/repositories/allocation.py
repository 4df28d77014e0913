"""What choosing a host or a board reads: every host with what its reservations hold and its
latest utilization sample, every board with its wiring, health, holder and recent use.

One query per kind of fact, whatever the size of the pool; nothing here is locked. The
choice is re-checked under the row lock when the reservation is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import (
    Board,
    BoardHealth,
    BoardLabel,
    BoardPeripheral,
    Host,
    HostLabel,
    Reservation,
    UtilizationSample,
)
from labfleet.db.repositories.reservations import Usage, active, usage_by_host

_NO_USE = Usage(0, 0, 0.0, 0)


@dataclass(frozen=True, slots=True)
class Sample:
    cpu_pct: float
    memory_pct: float
    storage_pct: float
    taken_at: datetime


@dataclass(frozen=True, slots=True)
class HostRow:
    host: Host
    labels: dict[str, str]
    usage: Usage
    """Sums over its active reservations."""
    sample: Sample | None
    """Its latest utilization sample, if it was ever sampled."""


@dataclass(frozen=True, slots=True)
class Holder:
    reservation_id: int
    owner: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class BoardRow:
    board: Board
    labels: dict[str, str]
    peripherals: frozenset[str]
    health: BoardHealth | None
    holder: Holder | None
    """The active reservation holding it, if any."""
    uses: int
    """Reservations of it made since the window's start."""
    last_used_at: datetime | None
    """When it was last reserved, ever."""


async def _latest_samples(session: AsyncSession) -> dict[int, Sample]:
    ranked = select(
        UtilizationSample,
        func.row_number()
        .over(
            partition_by=UtilizationSample.host_id,
            order_by=(UtilizationSample.taken_at.desc(), UtilizationSample.id.desc()),
        )
        .label("n"),
    ).subquery()
    rows = await session.execute(
        select(
            ranked.c.host_id, ranked.c.cpu_pct, ranked.c.memory_pct, ranked.c.storage_pct, ranked.c.taken_at
        ).where(ranked.c.n == 1)
    )
    return {int(h): Sample(float(c), float(m), float(s), t) for h, c, m, s, t in rows}


async def hosts(session: AsyncSession, *, now: datetime) -> list[HostRow]:
    """Every host, with its labels, what its active reservations hold and its latest sample."""
    found = list((await session.scalars(select(Host).order_by(Host.id))).unique())
    labels: dict[int, dict[str, str]] = {}
    for host_id, key, value in await session.execute(
        select(HostLabel.host_id, HostLabel.key, HostLabel.value)
    ):
        labels.setdefault(host_id, {})[key] = value
    usage = await usage_by_host(session, now)
    samples = await _latest_samples(session)
    return [HostRow(h, labels.get(h.id, {}), usage.get(h.id, _NO_USE), samples.get(h.id)) for h in found]


async def boards(session: AsyncSession, *, now: datetime, uses_since: datetime) -> list[BoardRow]:
    """Every board, with its labels, peripherals, health, holder and use since ``uses_since``."""
    found = list((await session.scalars(select(Board).order_by(Board.id))).unique())
    labels: dict[int, dict[str, str]] = {}
    for board_id, key, value in await session.execute(
        select(BoardLabel.board_id, BoardLabel.key, BoardLabel.value)
    ):
        labels.setdefault(board_id, {})[key] = value
    peripherals: dict[int, set[str]] = {}
    for board_id, name in await session.execute(select(BoardPeripheral.board_id, BoardPeripheral.name)):
        peripherals.setdefault(board_id, set()).add(name)
    health = {h.board_id: h for h in await session.scalars(select(BoardHealth))}
    holders = {
        board_id: Holder(ident, owner, expires_at)
        for ident, board_id, owner, expires_at in await session.execute(
            select(Reservation.id, Reservation.board_id, Reservation.owner, Reservation.expires_at).where(
                Reservation.board_id.is_not(None), active(now)
            )
        )
        if board_id is not None
    }
    recent = Reservation.created_at >= uses_since
    use: dict[int, tuple[int, datetime | None]] = {
        board_id: (int(n or 0), last)
        for board_id, n, last in await session.execute(
            select(
                Reservation.board_id,
                func.count(Reservation.id).filter(recent),
                func.max(Reservation.created_at),
            )
            .where(Reservation.board_id.is_not(None))
            .group_by(Reservation.board_id)
        )
        if board_id is not None
    }
    return [
        BoardRow(
            board=b,
            labels=labels.get(b.id, {}),
            peripherals=frozenset(peripherals.get(b.id, ())),
            health=health.get(b.id),
            holder=holders.get(b.id),
            uses=use.get(b.id, (0, None))[0],
            last_used_at=use.get(b.id, (0, None))[1],
        )
        for b in found
    ]
