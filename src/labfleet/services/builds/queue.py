"""The durable build queue as workers use it: claim, heartbeat, release, finish, recover.

Thin over :mod:`labfleet.db.repositories.build_queue`; like every service it flushes and
never commits: the caller's transaction decides. A worker commits right after a claim, a
heartbeat or a finish, so that each is visible to the other processes at once (and, on
SQLite, so that the write lock is held only for that moment).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import BuildJob, BuildServer
from labfleet.db.repositories import build_queue as repo
from labfleet.db.repositories import builds as builds_repo
from labfleet.db.repositories import server_queue
from labfleet.errors import Conflict
from labfleet.schemas.enums import BuildJobStatus

DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
REQUEUED = repo.REQUEUED
FAILED = repo.FAILED_OUTCOME


def worker_id() -> str:
    """A name for this worker that no other process shares: ``hostname:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


async def claim_next(
    *,
    session: AsyncSession,
    worker: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    server_ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> BuildJob | None:
    """The next queued job, now running under ``worker``'s lease; None when nothing is queued."""
    return await repo.claim_next(
        session, worker=worker, lease_seconds=lease_seconds, now=now or utcnow(), server_ids=server_ids
    )


async def heartbeat(
    *,
    session: AsyncSession,
    job_id: int,
    worker: str,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    now: datetime | None = None,
) -> bool:
    """Extend ``worker``'s lease on the job; False means it lost the lease and must stop the build."""
    return await repo.heartbeat(
        session, job_id=job_id, worker=worker, lease_seconds=lease_seconds, now=now or utcnow()
    )


async def release(
    *,
    session: AsyncSession,
    job_id: int,
    worker: str,
    reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Put a held job back in the queue unrun; refused (Conflict) unless ``worker`` holds it."""
    if not await repo.release(session, job_id=job_id, worker=worker, now=now or utcnow(), reason=reason):
        raise Conflict(f"build job {job_id} is not held by worker {worker}")


async def finish(
    *,
    session: AsyncSession,
    job_id: int,
    worker: str,
    status: BuildJobStatus | str,
    failure_reason: str | None = None,
    now: datetime | None = None,
) -> None:
    """Record how a held job ended; refused (Conflict) unless ``worker`` still holds it, and
    ``ValueError`` for a status that is not one a job ends with."""
    ended = BuildJobStatus(status).value
    if not await repo.finish(
        session,
        job_id=job_id,
        worker=worker,
        status=ended,
        failure_reason=failure_reason,
        now=now or utcnow(),
    ):
        raise Conflict(f"build job {job_id} is not held by worker {worker}; its result is not recorded")


async def recover_expired(
    *, session: AsyncSession, max_attempts: int = DEFAULT_MAX_ATTEMPTS, now: datetime | None = None
) -> list[tuple[int, str]]:
    """Requeue (or, past ``max_attempts``, fail) every running job whose lease expired, with the reason."""
    return await repo.recover_expired(session, now=now or utcnow(), max_attempts=max_attempts)


# -- what the build worker does with the jobs it holds


async def servers(*, session: AsyncSession) -> list[builds_repo.ServerRow]:
    return await builds_repo.servers(session)


# The claim is one statement of the repository's (see ``server_queue.claim_for_server``): the
# next job for a free slot of the server, placed on it, or None; named here for the engine,
# which does not reach ``db/``.
claim_for_server = server_queue.claim_for_server


async def beat(
    *, session: AsyncSession, job_id: int, worker: str, lease_seconds: float, now: datetime | None = None
) -> tuple[bool, bool]:
    """Heartbeat: (still held, cancel requested)."""
    return await repo.beat(
        session, job_id=job_id, worker=worker, lease_seconds=lease_seconds, now=now or utcnow()
    )


async def set_remote(
    *, session: AsyncSession, job_id: int, worker: str, workspace: str | None, group: str | None
) -> bool:
    return await repo.set_remote(
        session, job_id=job_id, worker=worker, workspace=workspace, remote_group=group
    )


async def set_commit(*, session: AsyncSession, job_id: int, worker: str, commit: str) -> bool:
    return await repo.set_resolved_commit(session, job_id=job_id, worker=worker, commit=commit)


async def finish_held(
    *,
    session: AsyncSession,
    job_id: int,
    worker: str,
    status: BuildJobStatus | str,
    failure_reason: str | None = None,
) -> bool:
    """Like ``finish``, now, but False instead of ``Conflict`` when the lease is gone."""
    ended = BuildJobStatus(status).value
    return await repo.finish(
        session, job_id=job_id, worker=worker, status=ended, failure_reason=failure_reason, now=utcnow()
    )


async def release_held(*, session: AsyncSession, job_id: int, worker: str, reason: str) -> bool:
    return await repo.release(session, job_id=job_id, worker=worker, now=utcnow(), reason=reason)


async def job(*, session: AsyncSession, job_id: int) -> BuildJob | None:
    return await builds_repo.get(session, job_id, refresh=True)


async def server_and_toolchains(
    *, session: AsyncSession, server_id: int | None, architecture: str
) -> tuple[BuildServer, list[tuple[str, str, str]]] | None:
    server = await builds_repo.server(session, server_id) if server_id is not None else None
    if server is None:
        return None
    chains = await builds_repo.toolchains(session, server.id, architecture)
    return server, [(t.compiler, t.target_triplet, t.path) for t in chains]


async def note_unheld(*, session: AsyncSession, job_id: int, line: str) -> None:
    """A line from labfleet in the log of a job nobody holds (recovered, requeued)."""
    await builds_repo.append_log_unheld(session, job_id=job_id, data=f"labfleet: {line}\n".encode())
