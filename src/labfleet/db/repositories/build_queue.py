"""The build queue's durable claim/lease mechanics: claim, heartbeat, release, finish, recover.

A queued build job is claimed by one worker at a time with a lease that the worker keeps
alive by heartbeating. A worker holds a job while the row says ``running`` with its name in
``lease_owner``; every change a worker makes is a conditional UPDATE on exactly that, so a
worker that lost its lease (expired, recovered, requeued) can change nothing any more.

Atomicity per backend:

- PostgreSQL: ``SELECT id ... FOR UPDATE SKIP LOCKED LIMIT 1`` picks the first queued job no
  other transaction is claiming, and the UPDATE follows in the same transaction. Concurrent
  claimers skip each other's rows instead of waiting on them.
- SQLite has one writer at a time. The claim is one ``UPDATE ... WHERE id = (SELECT ...)
  AND status = 'queued' RETURNING id`` statement: being a write from its first step, it
  takes the write lock (waiting with the busy timeout) before it reads, so no other process
  can claim between the choice and the update. A separate SELECT first would start a read
  snapshot that SQLite refuses to upgrade once another process has committed (SQLITE_BUSY,
  which the busy timeout does not retry). For the same reason a claim should be the first
  statement of its transaction on SQLite.

``attempt`` is the number of the run in progress (or the last one): a job that never ran
keeps the attempt it was created with on its first claim, and each later claim of the same
row, after its lease expired and it was requeued, counts one more.

Timestamps are passed in (``now``) so that callers and tests decide the clock.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildJob
from labfleet.db.models.builds import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED

# The outcomes ``recover_expired`` reports for each job it touched.
REQUEUED = "requeued"
FAILED_OUTCOME = "failed"
CANCELLED_OUTCOME = "cancelled"

# The statuses a holder may finish a job with.
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELLED})

_NO_SYNC = {"synchronize_session": False}


def _eligible(server_ids: Collection[int] | None) -> list[ColumnElement[bool]]:
    """Queued jobs, optionally only those assigned to one of ``server_ids`` or to no server yet."""
    conditions: list[ColumnElement[bool]] = [BuildJob.status == QUEUED]
    if server_ids is not None:
        ids = list(server_ids)
        unassigned = BuildJob.build_server_id.is_(None)
        conditions.append(or_(BuildJob.build_server_id.in_(ids), unassigned) if ids else unassigned)
    return conditions


def claim_values(*, worker: str, lease_seconds: float, now: datetime) -> dict[str, Any]:
    return {
        "status": RUNNING,
        "lease_owner": worker,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "heartbeat_at": now,
        # The first run keeps the attempt the row was made with; a rerun after a requeue counts.
        "attempt": case((BuildJob.started_at.is_(None), BuildJob.attempt), else_=BuildJob.attempt + 1),
        "started_at": now,
        "finished_at": None,
    }


def _held(job_id: int, worker: str) -> list[ColumnElement[bool]]:
    return [BuildJob.id == job_id, BuildJob.status == RUNNING, BuildJob.lease_owner == worker]


async def load_job(session: AsyncSession, job_id: int) -> BuildJob:
    job = await session.get(BuildJob, job_id, populate_existing=True)
    assert job is not None  # we have just updated it in this transaction
    return job


async def claim_next(
    session: AsyncSession,
    *,
    worker: str,
    lease_seconds: float,
    now: datetime,
    server_ids: Collection[int] | None = None,
) -> BuildJob | None:
    """Claim the next queued job (priority desc, queued_at, id) for ``worker``, or None if none is left."""
    values = claim_values(worker=worker, lease_seconds=lease_seconds, now=now)
    order = (BuildJob.priority.desc(), BuildJob.queued_at, BuildJob.id)
    eligible = _eligible(server_ids)

    if session.get_bind().dialect.name == "postgresql":
        # Bounded: a row we locked stays queued until we update it, so one pass normally does.
        for _ in range(8):
            pick = select(BuildJob.id).where(*eligible).order_by(*order).limit(1)
            job_id = (await session.execute(pick.with_for_update(skip_locked=True))).scalar_one_or_none()
            if job_id is None:
                return None
            stmt = (
                update(BuildJob)
                .where(BuildJob.id == job_id, BuildJob.status == QUEUED)
                .values(values)
                .returning(BuildJob.id)
                .execution_options(**_NO_SYNC)
            )
            if (await session.execute(stmt)).scalar_one_or_none() is not None:
                return await load_job(session, job_id)
        return None

    # SQLite (and anything else): choose and take in one writing statement.
    chosen = select(BuildJob.id).where(*eligible).order_by(*order).limit(1).scalar_subquery()
    stmt = (
        update(BuildJob)
        .where(BuildJob.id == chosen, BuildJob.status == QUEUED)
        .values(values)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    claimed = (await session.execute(stmt)).scalar_one_or_none()
    return None if claimed is None else await load_job(session, claimed)


async def heartbeat(
    session: AsyncSession, *, job_id: int, worker: str, lease_seconds: float, now: datetime
) -> bool:
    """Extend the lease if ``worker`` still holds it, unexpired; False means the lease is lost."""
    stmt = (
        update(BuildJob)
        .where(*_held(job_id, worker), BuildJob.lease_expires_at >= now)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def release(
    session: AsyncSession, *, job_id: int, worker: str, now: datetime, reason: str | None = None
) -> bool:
    """Give a held job back to the queue unrun (e.g. the worker shuts down); only the holder may."""
    stmt = (
        update(BuildJob)
        .where(*_held(job_id, worker))
        .values(
            status=QUEUED,
            lease_owner=None,
            lease_expires_at=None,
            heartbeat_at=None,
            failure_reason=reason or f"released by worker {worker} at {now.isoformat()}; requeued",
        )
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def finish(
    session: AsyncSession,
    *,
    job_id: int,
    worker: str,
    status: str,
    failure_reason: str | None = None,
    now: datetime,
) -> bool:
    """Record the end of a held job (succeeded, failed or cancelled); only the holder may.

    A holder whose lease ran out but that nobody has recovered yet may still finish: the row
    still names it, and the work is done.
    """
    if status not in FINAL_STATUSES:
        raise ValueError(f"{status!r} is not a final status ({', '.join(sorted(FINAL_STATUSES))})")
    stmt = (
        update(BuildJob)
        .where(*_held(job_id, worker))
        .values(
            status=status,
            finished_at=now,
            failure_reason=failure_reason,
            lease_owner=None,
            lease_expires_at=None,
        )
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def recover_expired(
    session: AsyncSession, *, now: datetime, max_attempts: int
) -> list[tuple[int, str]]:
    """Running jobs whose lease expired: back to ``queued``, or ``failed`` once ``max_attempts`` ran.

    Each gets the reason in ``failure_reason``; none is left ``running``. Two writing
    statements, no prior read, so this is safe against concurrent claims and heartbeats on
    both backends (on PostgreSQL a row being heartbeated is waited for and re-checked).
    """
    expired = and_(BuildJob.status == RUNNING, BuildJob.lease_expires_at < now)
    who = literal("lease expired: worker ") + func.coalesce(BuildJob.lease_owner, "?")
    cleared: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}

    cancel = (
        update(BuildJob)
        .where(expired, BuildJob.cancel_requested_at.is_not(None))
        .values(
            status=CANCELLED,
            finished_at=now,
            failure_reason=who + literal(" stopped heartbeating; the cancel requested stands"),
            **cleared,
        )
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    cancelled: Sequence[int] = (await session.execute(cancel)).scalars().all()

    fail = (
        update(BuildJob)
        .where(expired, BuildJob.attempt >= max_attempts)
        .values(
            status=FAILED,
            finished_at=now,
            failure_reason=who + literal(f" stopped heartbeating; failed: all {max_attempts} attempts used"),
            **cleared,
        )
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    failed: Sequence[int] = (await session.execute(fail)).scalars().all()

    requeue = (
        update(BuildJob)
        .where(expired, BuildJob.attempt < max_attempts)
        .values(
            status=QUEUED,
            heartbeat_at=None,
            failure_reason=who + literal(" stopped heartbeating; requeued"),
            **cleared,
        )
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    requeued: Sequence[int] = (await session.execute(requeue)).scalars().all()

    return sorted(
        [(i, REQUEUED) for i in requeued]
        + [(i, FAILED_OUTCOME) for i in failed]
        + [(i, CANCELLED_OUTCOME) for i in cancelled]
    )


async def beat(
    session: AsyncSession, *, job_id: int, worker: str, lease_seconds: float, now: datetime
) -> tuple[bool, bool]:
    """Heartbeat: (still held, cancel requested). A lost lease means: stop, record nothing."""
    stmt = (
        update(BuildJob)
        .where(*_held(job_id, worker), BuildJob.lease_expires_at >= now)
        .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(BuildJob.cancel_requested_at)
        .execution_options(**_NO_SYNC)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        return False, False
    return True, row[0] is not None


async def set_remote(
    session: AsyncSession, *, job_id: int, worker: str, workspace: str | None, remote_group: str | None
) -> bool:
    """Record where the held job runs on its server, for cleanup after a crash."""
    stmt = (
        update(BuildJob)
        .where(*_held(job_id, worker))
        .values(workspace=workspace, remote_group=remote_group)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def set_resolved_commit(session: AsyncSession, *, job_id: int, worker: str, commit: str) -> bool:
    stmt = (
        update(BuildJob)
        .where(*_held(job_id, worker))
        .values(resolved_commit=commit)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
