"""Queries on build jobs and their logs, and the build servers as placement sees them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildJob, BuildLogChunk, BuildServer, BuildServerLabel, Toolchain
from labfleet.db.models.builds import CANCELLED, QUEUED, RUNNING, SUCCEEDED
from labfleet.db.repositories import log_chunks
from labfleet.db.repositories.paging import newest_first

_NO_SYNC = {"synchronize_session": False}


@dataclass(frozen=True, slots=True)
class ServerRow:
    """A build server with what placement needs: toolchain architectures, labels, its builds."""

    server: BuildServer
    architectures: frozenset[str]
    labels: dict[str, str]
    running: int
    queued: int


async def get(session: AsyncSession, ident: int, *, refresh: bool = False) -> BuildJob | None:
    return await session.get(BuildJob, ident, populate_existing=refresh)


async def servers(session: AsyncSession) -> list[ServerRow]:
    """Every build server with its toolchains' architectures, labels and build counts."""
    found = list((await session.scalars(select(BuildServer).order_by(BuildServer.id))).unique())
    archs: dict[int, set[str]] = {}
    for server_id, arch in await session.execute(
        select(Toolchain.build_server_id, Toolchain.architecture).distinct()
    ):
        archs.setdefault(server_id, set()).add(arch)
    labels: dict[int, dict[str, str]] = {}
    for server_id, key, value in await session.execute(
        select(BuildServerLabel.build_server_id, BuildServerLabel.key, BuildServerLabel.value)
    ):
        labels.setdefault(server_id, {})[key] = value
    counts: dict[tuple[int | None, str], int] = {}
    for assigned, status, n in await session.execute(
        select(BuildJob.build_server_id, BuildJob.status, func.count())
        .where(BuildJob.status.in_((QUEUED, RUNNING)), BuildJob.build_server_id.is_not(None))
        .group_by(BuildJob.build_server_id, BuildJob.status)
    ):
        counts[(assigned, status)] = n
    return [
        ServerRow(
            server=s,
            architectures=frozenset(archs.get(s.id, ())),
            labels=labels.get(s.id, {}),
            running=counts.get((s.id, RUNNING), 0),
            queued=counts.get((s.id, QUEUED), 0),
        )
        for s in found
    ]


async def server(session: AsyncSession, ident: int) -> BuildServer | None:
    return await session.get(BuildServer, ident)


async def server_by_hostname(session: AsyncSession, hostname: str) -> BuildServer | None:
    return await session.scalar(select(BuildServer).where(BuildServer.hostname == hostname))


async def toolchains(session: AsyncSession, server_id: int, architecture: str) -> list[Toolchain]:
    rows = await session.scalars(
        select(Toolchain)
        .where(Toolchain.build_server_id == server_id, Toolchain.architecture == architecture)
        .order_by(Toolchain.id)
    )
    return list(rows)


async def durations(session: AsyncSession, *, limit: int = 5000) -> list[tuple[int, str, str, float]]:
    """(server, architecture, repository, seconds) of the latest succeeded builds, oldest first."""
    started = BuildJob.started_at
    finished = BuildJob.finished_at
    stmt = (
        select(BuildJob.build_server_id, BuildJob.architecture, BuildJob.repository_url, started, finished)
        .where(BuildJob.status == SUCCEEDED, BuildJob.build_server_id.is_not(None))
        .where(started.is_not(None), finished.is_not(None))
        .order_by(finished.desc())
        .limit(limit)
    )
    rows = (await session.execute(stmt)).all()
    return [
        (r[0], r[1], r[2], (r[4] - r[3]).total_seconds())
        for r in reversed(rows)
        if r[0] is not None and r[3] is not None and r[4] is not None
    ]


async def active(session: AsyncSession) -> list[BuildJob]:
    """Queued and running jobs, queued ones in the order workers claim them."""
    rows = await session.scalars(
        select(BuildJob)
        .where(BuildJob.status.in_((QUEUED, RUNNING)))
        .order_by(BuildJob.status, BuildJob.priority.desc(), BuildJob.queued_at, BuildJob.id)
    )
    return list(rows)


async def page(
    session: AsyncSession,
    *,
    statuses: Sequence[str] = (),
    architecture: str | None = None,
    repository_url: str | None = None,
    branch: str | None = None,
    build_server_id: int | None = None,
    limit: int,
    offset: int,
) -> tuple[int, list[BuildJob]]:
    where = [BuildJob.status.in_(statuses)] if statuses else []
    fields = {
        "architecture": architecture,
        "repository_url": repository_url,
        "branch": branch,
        "build_server_id": build_server_id,
    }
    return await newest_first(session, BuildJob, fields=fields, where=where, limit=limit, offset=offset)


async def cancel_queued(session: AsyncSession, *, job_id: int, reason: str, now: datetime) -> bool:
    """A queued job becomes cancelled, unless a worker claimed it first."""
    stmt = (
        update(BuildJob)
        .where(BuildJob.id == job_id, BuildJob.status == QUEUED)
        .values(status=CANCELLED, finished_at=now, failure_reason=reason)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def request_cancel(session: AsyncSession, *, job_id: int, by: str, now: datetime) -> bool:
    """Ask the worker running the job to stop it; False when it is not running (any more)."""
    stmt = (
        update(BuildJob)
        .where(BuildJob.id == job_id, BuildJob.status == RUNNING, BuildJob.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now, cancel_requested_by=by)
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def append_log(session: AsyncSession, *, job_id: int, worker: str, offset: int, data: bytes) -> bool:
    """Store a piece of the log at ``offset`` if ``worker`` still holds the job; False if not."""
    stmt = (
        update(BuildJob)
        .where(
            BuildJob.id == job_id,
            BuildJob.status == RUNNING,
            BuildJob.lease_owner == worker,
            BuildJob.log_size == offset,
        )
        .values(log_size=offset + len(data))
        .returning(BuildJob.id)
        .execution_options(**_NO_SYNC)
    )
    if (await session.execute(stmt)).scalar_one_or_none() is None:
        return False
    await session.execute(insert(BuildLogChunk).values(build_job_id=job_id, offset=offset, data=data))
    return True


async def append_log_unheld(session: AsyncSession, *, job_id: int, data: bytes) -> int:
    """Append a line written by labfleet itself (a recovery, a cancel) to a job nobody runs."""
    stmt = (
        update(BuildJob)
        .where(BuildJob.id == job_id)
        .values(log_size=BuildJob.log_size + len(data))
        .returning(BuildJob.log_size)
        .execution_options(**_NO_SYNC)
    )
    end = (await session.execute(stmt)).scalar_one()
    await session.execute(
        insert(BuildLogChunk).values(build_job_id=job_id, offset=end - len(data), data=data)
    )
    return int(end - len(data))


async def read_log(session: AsyncSession, *, job_id: int, offset: int, limit: int) -> tuple[int, bytes]:
    """Up to ``limit`` bytes of the stored log from ``offset`` (which may fall inside a chunk)."""
    data = await log_chunks.read(
        session,
        owner=BuildLogChunk.build_job_id == job_id,
        offset_column=BuildLogChunk.offset,
        data_column=BuildLogChunk.data,
        offset=offset,
        limit=limit,
    )
    return offset, data


async def queued_pinned_to(session: AsyncSession, server_id: int, *, limit: int = 10) -> list[int]:
    """Queued jobs that may run only on this server (submitted with it named)."""
    rows = await session.scalars(
        select(BuildJob.id)
        .where(BuildJob.status == QUEUED, BuildJob.server_choice == str(server_id))
        .order_by(BuildJob.id)
        .limit(limit)
    )
    return list(rows)
