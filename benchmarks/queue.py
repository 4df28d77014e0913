"""The durable build queue: jobs claimed per second from a 10,000-job queue, SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.queue [--jobs 10000] [--workers 4] [--pg-url URL] [--no-pg]

Each job costs what a real worker pays: a claim in one transaction (committed), then a
finish in another (committed). Every measurement starts from a freshly filled queue in a
database of its own: a migrated SQLite file (WAL) in a temporary directory, and a PostgreSQL
database created on the server of ``--pg-url`` (default: ``LABFLEET_TEST_PG_URL`` or the
test suite's) and dropped afterwards. Shown: one worker on each backend, and ``--workers``
worker processes ('spawn') on each, started together; the rate is jobs / wall-clock time
from the start signal until the queue is empty. Every job is checked to have run once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from benchmarks.procs import run_together
from benchmarks.scratch import migrated_pg, migrated_sqlite
from labfleet.config import normalize_database_url
from labfleet.db.base import utcnow
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import BuildJob
from labfleet.services.builds import queue as build_queue

DEFAULT_PG = os.environ.get("LABFLEET_TEST_PG_URL", "postgresql://labfleet:labfleet@127.0.0.1:5432/postgres")


async def fill(url: str, jobs: int) -> None:
    engine = create_engine(url)
    start = utcnow()
    rows = [
        {
            "repository_url": "https://git.lab/linux.git",
            "branch": "main",
            "architecture": "arm64",
            "command": "make",
            "status": "queued",
            "submitted_by": "bench",
            "priority": i % 5,
            "queued_at": start + timedelta(microseconds=i),
            "artifact_specs": [],
            "decision": {},
        }
        for i in range(jobs)
    ]
    try:
        async with session_factory(engine)() as session:
            for i in range(0, jobs, 1000):
                await session.execute(insert(BuildJob), rows[i : i + 1000])
            await session.commit()
    finally:
        await engine.dispose()


async def drain(url: str) -> int:
    """Claim and finish until the queue is empty; the number of jobs this worker ran."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    worker = build_queue.worker_id()
    done = 0
    try:
        while True:
            async with sessions() as session:
                job = await build_queue.claim_next(session=session, worker=worker, lease_seconds=60)
                await session.commit()
            if job is None:
                return done
            async with sessions() as session:
                await build_queue.finish(session=session, job_id=job.id, worker=worker, status="succeeded")
                await session.commit()
            done += 1
    finally:
        await engine.dispose()


def _drain(url: str) -> int:
    return asyncio.run(drain(url))


async def check(url: str, jobs: int) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            stmt = select(BuildJob.status, func.count(), func.max(BuildJob.attempt)).group_by(BuildJob.status)
            counts = {status: (n, top) for status, n, top in (await session.execute(stmt)).all()}
    finally:
        await engine.dispose()
    assert counts == {"succeeded": (jobs, 1)}, counts


def measure(url: str, jobs: int, workers: int, scratch: Path) -> float:
    asyncio.run(fill(url, jobs))
    if workers == 1:
        t0 = time.perf_counter()
        ran = asyncio.run(drain(url))
        elapsed = time.perf_counter() - t0
        assert ran == jobs, ran
    else:
        elapsed, ran_each = run_together(_drain, [(url,)] * workers, scratch)
        shares = sorted(ran_each, reverse=True)
        assert sum(shares) == jobs, shares
        print(f"    per worker: {shares}")
    asyncio.run(check(url, jobs))
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    admin = normalize_database_url(args.pg_url)

    print(f"build queue: {args.jobs} jobs, claim + finish per job, one committed transaction each")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        plans = [("SQLite", 1), ("SQLite", args.workers)]
        if not args.no_pg:
            plans += [("PostgreSQL", 1), ("PostgreSQL", args.workers)]
        for backend, workers in plans:
            db = migrated_sqlite(scratch, "queue") if backend == "SQLite" else migrated_pg(admin)
            with db as url:
                rate = measure(url, args.jobs, workers, scratch)
            label = "1 worker" if workers == 1 else f"{workers} worker processes"
            print(f"  {backend:<10} {label:<20} {rate:8.0f} jobs/s")


if __name__ == "__main__":
    main()
