"""The durable build queue on both backends: claim order, leases, heartbeats, finishing, recovery."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildJob, BuildServer
from labfleet.errors import Conflict
from labfleet.services.builds import queue as build_queue
from tests.db.build_rows import EPOCH, build_job

NOW = EPOCH + timedelta(days=1)
LEASE = 30.0


async def queued(session: AsyncSession, **overrides: Any) -> BuildJob:
    values: dict[str, Any] = {"status": "queued", "started_at": None, "finished_at": None}
    values.update(overrides)
    return await build_job(session, **values)


async def claim(session: AsyncSession, worker: str = "w1", now: datetime = NOW, **kw: Any) -> BuildJob | None:
    return await build_queue.claim_next(session=session, worker=worker, lease_seconds=LEASE, now=now, **kw)


# Validates: 3.3 (priority order), property 2
async def test_claim_order_is_priority_then_age_then_id(session: AsyncSession) -> None:
    old_low = await queued(session, priority=0, queued_at=EPOCH)
    new_high = await queued(session, priority=5, queued_at=EPOCH + timedelta(hours=2))
    old_high = await queued(session, priority=5, queued_at=EPOCH + timedelta(hours=1))
    tie_a = await queued(session, priority=1, queued_at=EPOCH)
    tie_b = await queued(session, priority=1, queued_at=EPOCH)
    await build_job(session, priority=99)  # not queued: never claimed

    order = []
    while (job := await claim(session)) is not None:
        order.append(job.id)
    assert order == [old_high.id, new_high.id, min(tie_a.id, tie_b.id), max(tie_a.id, tie_b.id), old_low.id]


# Validates: 3.3
async def test_claim_sets_the_lease_and_a_claimed_job_is_not_claimed_again(session: AsyncSession) -> None:
    job = await queued(session, attempt=1)
    claimed = await claim(session, worker="w1")
    assert claimed is not None and claimed.id == job.id
    assert claimed.status == "running"
    assert claimed.lease_owner == "w1"
    assert claimed.lease_expires_at == NOW + timedelta(seconds=LEASE)
    assert claimed.heartbeat_at == NOW and claimed.started_at == NOW
    assert claimed.attempt == 1  # the first run keeps the attempt the row was made with
    assert await claim(session, worker="w2") is None


# Validates: 2.3, 3.3
async def test_claim_only_for_the_given_servers_or_unassigned(session: AsyncSession) -> None:
    servers = []
    for n in (1, 2):
        server = BuildServer(hostname=f"bq-{n}.lab", address=f"10.9.0.{n}", ssh_user="builder")
        session.add(server)
        servers.append(server)
    await session.flush()
    on_2 = await queued(session, priority=9, build_server_id=servers[1].id)
    on_1 = await queued(session, priority=5, build_server_id=servers[0].id)
    anywhere = await queued(session, priority=1)

    first = await claim(session, server_ids=[servers[0].id])
    second = await claim(session, server_ids=[servers[0].id])
    assert [first and first.id, second and second.id] == [on_1.id, anywhere.id]
    assert await claim(session, server_ids=[servers[0].id]) is None
    assert await claim(session, server_ids=[]) is None
    last = await claim(session)
    assert last is not None and last.id == on_2.id


# Validates: 3.3
async def test_heartbeat_extends_only_the_holders_unexpired_lease(session: AsyncSession) -> None:
    job = await queued(session)
    await claim(session, worker="w1")
    later = NOW + timedelta(seconds=20)
    assert await build_queue.heartbeat(session=session, job_id=job.id, worker="w2", now=later) is False
    assert await build_queue.heartbeat(
        session=session, job_id=job.id, worker="w1", lease_seconds=LEASE, now=later
    )
    await session.refresh(job)
    assert job.lease_expires_at == later + timedelta(seconds=LEASE) and job.heartbeat_at == later
    # Past its expiry the lease is lost, even for the holder.
    too_late = later + timedelta(seconds=LEASE + 1)
    assert await build_queue.heartbeat(session=session, job_id=job.id, worker="w1", now=too_late) is False


# Validates: 3.3
async def test_finish_by_a_non_holder_is_refused(session: AsyncSession) -> None:
    job = await queued(session)
    await claim(session, worker="w1")
    with pytest.raises(Conflict):
        await build_queue.finish(session=session, job_id=job.id, worker="w2", status="succeeded", now=NOW)
    await session.refresh(job)
    assert job.status == "running" and job.lease_owner == "w1"

    done = NOW + timedelta(minutes=3)
    await build_queue.finish(
        session=session, job_id=job.id, worker="w1", status="failed", failure_reason="exit 2", now=done
    )
    await session.refresh(job)
    assert (job.status, job.failure_reason, job.finished_at) == ("failed", "exit 2", done)
    assert job.lease_owner is None and job.lease_expires_at is None
    # Finished: nobody holds it any more, not even the worker that finished it.
    with pytest.raises(Conflict):
        await build_queue.finish(session=session, job_id=job.id, worker="w1", status="succeeded", now=done)
    with pytest.raises(ValueError):
        await build_queue.finish(session=session, job_id=job.id, worker="w1", status="running", now=done)


# Validates: 3.3
async def test_release_requeues_only_for_the_holder(session: AsyncSession) -> None:
    job = await queued(session)
    await claim(session, worker="w1")
    with pytest.raises(Conflict):
        await build_queue.release(session=session, job_id=job.id, worker="w2", now=NOW)
    await build_queue.release(session=session, job_id=job.id, worker="w1", reason="shutting down", now=NOW)
    await session.refresh(job)
    assert (job.status, job.lease_owner, job.failure_reason) == ("queued", None, "shutting down")
    again = await claim(session, worker="w2")
    assert again is not None and again.id == job.id and again.lease_owner == "w2"


# Validates: 2.3, 3.3 (a worker that stops heartbeating loses nothing; never stuck "running")
async def test_expired_lease_is_requeued_then_failed_past_max_attempts(session: AsyncSession) -> None:
    job = await queued(session, attempt=1)
    alive = await queued(session, priority=-1)
    await claim(session, worker="dead")
    await claim(session, worker="alive")
    expired = NOW + timedelta(seconds=LEASE + 1)
    assert await build_queue.heartbeat(
        session=session,
        job_id=alive.id,
        worker="alive",
        lease_seconds=LEASE,
        now=expired - timedelta(seconds=2),
    )

    # Not yet expired: nothing happens.
    assert await build_queue.recover_expired(session=session, now=NOW, max_attempts=2) == []

    assert await build_queue.recover_expired(session=session, now=expired, max_attempts=2) == [
        (job.id, build_queue.REQUEUED)
    ]
    await session.refresh(job)
    await session.refresh(alive)
    assert (job.status, job.lease_owner, job.lease_expires_at, job.attempt) == ("queued", None, None, 1)
    assert job.failure_reason == "lease expired: worker dead stopped heartbeating; requeued"
    assert alive.status == "running" and alive.lease_owner == "alive"
    # The dead worker, back from its pause, can neither heartbeat nor finish.
    assert not await build_queue.heartbeat(session=session, job_id=job.id, worker="dead", now=expired)
    with pytest.raises(Conflict):
        await build_queue.finish(
            session=session, job_id=job.id, worker="dead", status="succeeded", now=expired
        )

    # The second run counts as attempt 2; it dies too, and that was the last attempt.
    rerun = await claim(session, worker="dead-too", now=expired)
    assert rerun is not None and rerun.id == job.id and rerun.attempt == 2
    twice = expired + timedelta(seconds=LEASE + 1)
    outcomes = await build_queue.recover_expired(session=session, now=twice, max_attempts=2)
    # "alive" stopped heartbeating meanwhile as well, on its first attempt.
    assert outcomes == [(job.id, build_queue.FAILED), (alive.id, build_queue.REQUEUED)]
    await session.refresh(job)
    assert (job.status, job.lease_owner, job.finished_at, job.attempt) == ("failed", None, twice, 2)
    assert job.failure_reason == (
        "lease expired: worker dead-too stopped heartbeating; failed: all 2 attempts used"
    )
    last = await claim(session, worker="w9", now=twice)
    assert last is not None and last.id == alive.id
    assert await claim(session, worker="w9", now=twice) is None


def test_worker_ids_are_unique_and_say_where_they_run() -> None:
    import os
    import socket

    a, b = build_queue.worker_id(), build_queue.worker_id()
    assert a != b
    host, pid, _ = a.rsplit(":", 2)
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
