"""Separate OS processes competing for one durable queue: every job runs exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import BuildJob
from tests.db.build_rows import build_job
from tests.helpers import processes
from tests.services.builds import queue_worker

JOBS = 50


async def _fill(url: str) -> list[int]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            jobs = [
                await build_job(session, status="queued", started_at=None, finished_at=None, priority=i % 3)
                for i in range(JOBS)
            ]
            await session.commit()
            return [j.id for j in jobs]
    finally:
        await engine.dispose()


async def _rows(url: str) -> list[BuildJob]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            return list((await session.scalars(select(BuildJob).order_by(BuildJob.id))).all())
    finally:
        await engine.dispose()


# Validates: 3.3 (no job runs twice with several processes), property 2
@pytest.mark.parametrize("workers", [2, 4])
async def test_competing_processes_run_each_job_exactly_once(
    fresh_db_url: str, tmp_path: Path, workers: int
) -> None:
    ids = await _fill(fresh_db_url)
    go = tmp_path / "go"
    results = [tmp_path / f"worker-{n}.txt" for n in range(workers)]
    ctx = processes()
    procs = [ctx.Process(target=queue_worker.run, args=(fresh_db_url, str(r), str(go))) for r in results]
    for p in procs:
        p.start()
    try:
        queue_worker.wait_ready(results)
        go.touch()
        for p in procs:
            p.join(timeout=120)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0] * workers

    claims = [line.split() for r in results if r.exists() for line in r.read_text().splitlines()]
    runs = Counter(int(job_id) for job_id, _ in claims)
    assert sorted(runs) == sorted(ids)
    assert set(runs.values()) == {1}, {job: n for job, n in runs.items() if n != 1}
    # They really competed: more than one process got work.
    assert len({worker for _, worker in claims}) > 1

    rows = await _rows(fresh_db_url)
    assert {(r.status, r.lease_owner, r.attempt) for r in rows} == {("succeeded", None, 1)}
    owners = {int(job_id): worker for job_id, worker in claims}
    assert all(r.finished_at is not None and r.started_at is not None and r.id in owners for r in rows)
