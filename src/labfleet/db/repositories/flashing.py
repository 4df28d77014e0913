"""Queries on flash jobs: the board's row lock, the claim/lease mechanics, artifact references.

As with builds (``build_queue.py``), a worker holds a job while the row says ``running``
with its name in ``lease_owner``, and every change it makes is a conditional UPDATE on
exactly that: a worker that lost its lease changes nothing any more. On PostgreSQL the
claim picks a row with ``FOR UPDATE SKIP LOCKED``; on SQLite it is one writing statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, ArtifactReference, Board, BoardLabel, FlashJob
from labfleet.db.models.flashing import ACTIVE, QUEUED, RUNNING
from labfleet.db.repositories import reservations

_NO_SYNC = {"synchronize_session": False}
BOARD_HOLDER = "board"
JOB_HOLDER = "flash-job"


lock_board = reservations.lock_board
"""The board's row, locked for the transaction (``FOR UPDATE``; SQLite holds the write lock)."""


async def board(session: AsyncSession, board_id: int) -> Board | None:
    return await session.get(Board, board_id, populate_existing=True)


async def labels(session: AsyncSession, board_id: int) -> dict[str, str]:
    rows = await session.execute(
        select(BoardLabel.key, BoardLabel.value).where(BoardLabel.board_id == board_id)
    )
    return {row[0]: row[1] for row in rows}


async def artifact(session: AsyncSession, artifact_id: int) -> Artifact | None:
    return await session.get(Artifact, artifact_id)


async def active_for(session: AsyncSession, board_id: int) -> FlashJob | None:
    return await session.scalar(
        select(FlashJob).where(FlashJob.board_id == board_id, FlashJob.status.in_(ACTIVE))
    )


async def get(session: AsyncSession, job_id: int) -> FlashJob | None:
    return await session.get(FlashJob, job_id, populate_existing=True)


async def history(
    session: AsyncSession, *, board_id: int, statuses: Sequence[str] = (), limit: int, offset: int
) -> tuple[int, list[FlashJob]]:
    stmt = select(FlashJob).where(FlashJob.board_id == board_id)
    if statuses:
        stmt = stmt.where(FlashJob.status.in_(list(statuses)))
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(
        stmt.order_by(FlashJob.id.desc())
        .limit(limit)
        .offset(offset)
        .execution_options(populate_existing=True)
    )
    return int(total or 0), list(rows)


async def set_board(
    session: AsyncSession, *, board_id: int, values: dict[str, Any], when_status: str | None = None
) -> str | None:
    """Update the board (only while its status is ``when_status``, if given); its status before, or None."""
    before = await session.scalar(select(Board.status).where(Board.id == board_id))
    if before is None or (when_status is not None and before != when_status):
        return None
    stmt = update(Board).where(Board.id == board_id).values(values).execution_options(**_NO_SYNC)
    if when_status is not None:
        stmt = stmt.where(Board.status == when_status)
    await session.execute(stmt)
    return before


# -- artifact references: a board's known-good image, an unfinished job's image


async def hold_artifact(session: AsyncSession, *, artifact_id: int, holder_kind: str, holder_id: int) -> None:
    exists = await session.scalar(
        select(ArtifactReference.id).where(
            ArtifactReference.artifact_id == artifact_id,
            ArtifactReference.holder_kind == holder_kind,
            ArtifactReference.holder_id == holder_id,
        )
    )
    if exists is None:
        session.add(ArtifactReference(artifact_id=artifact_id, holder_kind=holder_kind, holder_id=holder_id))
        await session.flush()


async def let_go(session: AsyncSession, *, holder_kind: str, holder_id: int) -> None:
    await session.execute(
        delete(ArtifactReference)
        .where(ArtifactReference.holder_kind == holder_kind, ArtifactReference.holder_id == holder_id)
        .execution_options(**_NO_SYNC)
    )


# -- the lease


def _held(job_id: int, worker: str) -> list[ColumnElement[bool]]:
    return [FlashJob.id == job_id, FlashJob.status == RUNNING, FlashJob.lease_owner == worker]


async def claim_next(
    session: AsyncSession, *, worker: str, lease_seconds: float, now: datetime
) -> FlashJob | None:
    """The oldest queued job, now running under ``worker``'s lease (one more attempt); or None."""
    values: dict[str, Any] = {
        "status": RUNNING,
        "lease_owner": worker,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "heartbeat_at": now,
        "attempt": FlashJob.attempt + 1,
        "started_at": now,
    }
    pick = select(FlashJob.id).where(FlashJob.status == QUEUED).order_by(FlashJob.id).limit(1)
    target: Any
    if session.get_bind().dialect.name == "postgresql":
        target = (await session.execute(pick.with_for_update(skip_locked=True))).scalar_one_or_none()
        if target is None:
            return None
    else:
        target = pick.scalar_subquery()
    stmt = (
        update(FlashJob)
        .where(FlashJob.id == target, FlashJob.status == QUEUED)
        .values(values)
        .returning(FlashJob.id)
        .execution_options(**_NO_SYNC)
    )
    claimed = (await session.execute(stmt)).scalar_one_or_none()
    return None if claimed is None else await get(session, claimed)


async def unclaim(session: AsyncSession, *, job_id: int, worker: str, count_attempt: bool) -> bool:
    """Give a held job back to the queue; without ``count_attempt`` the claim is as if it never was."""
    values: dict[str, Any] = {"status": QUEUED, "lease_owner": None, "lease_expires_at": None}
    if not count_attempt:
        values["attempt"] = FlashJob.attempt - 1
    stmt = (
        update(FlashJob).where(*_held(job_id, worker)).values(values).returning(FlashJob.id)
    ).execution_options(**_NO_SYNC)
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def beat(
    session: AsyncSession,
    *,
    job_id: int,
    worker: str,
    lease_seconds: float,
    now: datetime,
    values: dict[str, Any],
) -> bool:
    """Renew the lease (with progress ``values``) if ``worker`` still holds it; False: the lease is lost."""
    stmt = (
        update(FlashJob)
        .where(*_held(job_id, worker), FlashJob.lease_expires_at >= now)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds), **values)
        .returning(FlashJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def finish(session: AsyncSession, *, job_id: int, worker: str, values: dict[str, Any]) -> bool:
    """Record the end of a held job; only its holder may (an expired but unrecovered lease still counts)."""
    stmt = (
        update(FlashJob)
        .where(*_held(job_id, worker))
        .values(lease_owner=None, lease_expires_at=None, **values)
        .returning(FlashJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def expired(session: AsyncSession, *, now: datetime) -> list[FlashJob]:
    stmt = select(FlashJob).where(FlashJob.status == RUNNING, FlashJob.lease_expires_at < now)
    return list(await session.scalars(stmt.order_by(FlashJob.id).execution_options(populate_existing=True)))


async def take_expired(session: AsyncSession, *, job_id: int, now: datetime, values: dict[str, Any]) -> bool:
    """Apply ``values`` to the job if it is still running on an expired lease (nobody beat meanwhile)."""
    stmt = (
        update(FlashJob)
        .where(FlashJob.id == job_id, FlashJob.status == RUNNING, FlashJob.lease_expires_at < now)
        .values(lease_owner=None, lease_expires_at=None, **values)
        .returning(FlashJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
