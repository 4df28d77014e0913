"""A build queue worker in a process of its own, for the tests that make processes compete.

Runs ``claim -> record -> finish`` until the queue is empty, one transaction per step, and
writes one line ``job_id worker`` per claimed job to its result file (flushed before the
finish, so a job claimed twice would show twice).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from labfleet.db.engine import create_engine, session_factory
from labfleet.services.builds import queue as build_queue


async def _work(url: str, results: Path, work_seconds: float) -> None:
    engine = create_engine(url)
    sessions = session_factory(engine)
    worker = build_queue.worker_id()
    try:
        with results.open("a") as out:
            while True:
                async with sessions() as session:
                    job = await build_queue.claim_next(session=session, worker=worker, lease_seconds=60)
                    await session.commit()
                if job is None:
                    return
                out.write(f"{job.id} {worker}\n")
                out.flush()
                if work_seconds:
                    await asyncio.sleep(work_seconds)
                async with sessions() as session:
                    await build_queue.finish(
                        session=session, job_id=job.id, worker=worker, status="succeeded"
                    )
                    await session.commit()
    finally:
        await engine.dispose()


def run(url: str, results: str, go: str, work_seconds: float = 0.002) -> None:
    """The process entry point (picklable for the 'spawn' start method)."""
    # Start together, so the processes really compete for the same rows.
    Path(results).with_suffix(".ready").touch()
    while not Path(go).exists():
        time.sleep(0.005)
    asyncio.run(_work(url, Path(results), work_seconds))


def wait_ready(results: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(r.with_suffix(".ready").exists() for r in results):
        if time.monotonic() > deadline:
            raise TimeoutError("queue workers did not start")
        time.sleep(0.01)
