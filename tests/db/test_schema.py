"""The schema as the migrations build it, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from labfleet.db import migrate
from labfleet.db.base import Base, StatusChoice
from labfleet.db.engine import create_engine
from labfleet.db.models import (
    Alert,
    Board,
    BoardStatusChoice,
    BuildJobStatusChoice,
    BuildServerStatusChoice,
    HostStatusChoice,
    Reservation,
)
from labfleet.schemas.enums import BoardStatus, BuildJobStatus, ServerStatus, WorkStatus


def _board(n: int) -> Board:
    return Board(
        name=f"b{n}", board_type="t", architecture="arm64", serial_number=f"s{n}", console_url="socket://h:1"
    )


async def test_migrations_build_exactly_the_models(connection: AsyncConnection) -> None:
    tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables - {"alembic_version"} == set(Base.metadata.tables)
    version = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    assert version == migrate.current_head()


async def test_migrations_go_down_and_up_again(fresh_db_url: str) -> None:
    import asyncio

    await asyncio.to_thread(migrate.downgrade, fresh_db_url, "base")
    engine = create_engine(fresh_db_url)
    try:
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
    finally:
        await engine.dispose()
    await asyncio.to_thread(migrate.upgrade, fresh_db_url)


async def test_sqlite_runs_in_wal_with_foreign_keys(connection: AsyncConnection, backend: str) -> None:
    if backend != "sqlite":
        assert connection.dialect.name == "postgresql"
        return
    assert (await connection.scalar(text("PRAGMA journal_mode"))) == "wal"
    assert (await connection.scalar(text("PRAGMA foreign_keys"))) == 1


async def test_status_must_be_a_known_value(session: AsyncSession) -> None:
    board = _board(1)
    board.status = "on-fire"
    session.add(board)
    with pytest.raises(IntegrityError):
        await session.flush()


async def test_status_tables_are_seeded(session: AsyncSession) -> None:
    values = list(await session.scalars(select(BoardStatusChoice.value).order_by(BoardStatusChoice.position)))
    assert values == ["online", "degraded", "offline", "maintenance", "flashing", "failed", "decommissioned"]


@pytest.mark.parametrize(
    ("table", "enum"),
    [
        (BuildServerStatusChoice, ServerStatus),
        (HostStatusChoice, ServerStatus),
        (BoardStatusChoice, BoardStatus),
        (BuildJobStatusChoice, BuildJobStatus),
    ],
)
async def test_each_status_table_has_the_rows_of_its_enum(
    session: AsyncSession, table: type[StatusChoice], enum: type[StrEnum]
) -> None:
    rows = (
        await session.execute(select(table.value, table.label, table.colour).order_by(table.position))
    ).all()
    assert [value for value, _, _ in rows] == [s.value for s in enum]
    if issubclass(enum, WorkStatus):  # its label and colour are written in the enum too
        assert [tuple(r) for r in rows] == [(s.value, s.label, s.colour) for s in enum]


async def test_a_board_has_at_most_one_active_reservation(session: AsyncSession) -> None:
    # Validates: 11.5 (the database's own guard against double booking)
    board = _board(2)
    session.add(board)
    await session.flush()
    expires = datetime.now(UTC) + timedelta(hours=1)
    first = Reservation(board_id=board.id, owner="a", expires_at=expires)
    session.add(first)
    await session.flush()
    async with session.begin_nested():
        session.add(Reservation(board_id=board.id, owner="b", expires_at=expires))
        with pytest.raises(IntegrityError):
            await session.flush()
    first.released_at = datetime.now(UTC)
    session.add(Reservation(board_id=board.id, owner="b", expires_at=expires))
    await session.flush()


async def test_a_reservation_holds_a_host_or_a_board_not_both(session: AsyncSession) -> None:
    session.add(Reservation(owner="a", expires_at=datetime.now(UTC)))
    with pytest.raises(IntegrityError):
        await session.flush()


async def test_one_unresolved_alert_per_resource_and_kind(session: AsyncSession) -> None:
    # Validates: 16.2
    session.add(
        Alert(resource_kind="board", resource_id=1, kind="unreachable", severity="critical", message="m")
    )
    await session.flush()
    async with session.begin_nested():
        session.add(
            Alert(resource_kind="board", resource_id=1, kind="unreachable", severity="critical", message="m")
        )
        with pytest.raises(IntegrityError):
            await session.flush()
    old = (await session.scalars(select(Alert))).one()
    old.state = "resolved"
    session.add(
        Alert(resource_kind="board", resource_id=1, kind="unreachable", severity="critical", message="m")
    )
    await session.flush()


async def test_times_come_back_in_utc(session: AsyncSession) -> None:
    board = _board(3)
    session.add(board)
    await session.flush()
    ident = board.id
    session.expunge_all()
    again = await session.get(Board, ident)
    assert again is not None
    assert again.created_at.tzinfo is UTC or again.created_at.utcoffset() == timedelta(0)
    assert abs(again.created_at - datetime.now(UTC)) < timedelta(minutes=5)


async def test_naive_datetimes_are_refused(session: AsyncSession) -> None:
    session.add(Reservation(owner="a", board_id=None, host_id=None, expires_at=datetime(2030, 1, 1)))
    with pytest.raises(Exception, match="naive"):
        await session.flush()
