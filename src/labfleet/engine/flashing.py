"""The flash worker: claims queued flash jobs under a lease and runs them (``services/flashing/service.py``).

One per ``labfleet serve``. It wakes on the ``flash-jobs`` topic or every ``poll_seconds``,
recovers other workers' expired leases (a job run again from the start, rolled back or
failed: never left ``running``), claims what is queued, and runs each job in a task of
its own, which holds the board's device lock and heartbeats. Stopping the worker gives its
jobs back to the queue, to be run again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Unpack

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.worker import StoreWorker, WorkerOptions
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts.service import Store
from labfleet.services.core.events import EventBus
from labfleet.services.flashing import FlashJob, run
from labfleet.services.flashing import service as flashing
from labfleet.services.flashing.access import FlashAccess, FlashHardware
from labfleet.services.flashing.service import FlashPolicy

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


class FlashWorker(StoreWorker[FlashPolicy]):
    def __init__(
        self,
        *,
        sessions: Sessions,
        bus: EventBus,
        store: Store,
        secrets: SecretBox,
        policy: FlashPolicy = FlashPolicy(),
        hardware: FlashHardware | None = None,
        max_jobs: int = 8,
        **options: Unpack[WorkerOptions],
    ) -> None:
        super().__init__(sessions, bus, store, secrets, policy, **options)
        self._hardware = hardware
        self._max_jobs = max_jobs
        self._running: dict[int, asyncio.Task[FlashJob | None]] = {}

    async def run(self) -> None:
        """Claim and run flash jobs until cancelled; then give back what runs."""
        async with contextlib.AsyncExitStack() as stack:
            hardware = self._hardware
            if hardware is None:
                hardware = await stack.enter_async_context(FlashAccess(self._secrets))
            sub = self._bus.subscribe([flashing.TOPIC_ALL])
            stack.callback(sub.close)
            try:
                while True:
                    await self._recover_if_due()
                    await self._claim_all(hardware)
                    await sub.get(timeout=self._poll)
                    while await sub.get(timeout=0) is not None:
                        pass
            finally:
                await self._stop_all()

    async def run_once(self) -> list[FlashJob]:
        """Recover, claim every queued job and run them to their end (for tests and tools)."""
        async with contextlib.AsyncExitStack() as stack:
            hardware = self._hardware
            if hardware is None:
                hardware = await stack.enter_async_context(FlashAccess(self._secrets))
            await self.recover()
            started = await self._claim_all(hardware)
            results = await asyncio.gather(*started)
        return [job for job in results if job is not None]

    async def recover(self) -> list[tuple[int, str]]:
        async with self._sessions() as session:
            touched = await flashing.recover(session=session)
            await session.commit()
            jobs = [await flashing.get(session=session, job_id=job_id) for job_id, _ in touched]
        for job in jobs:
            flashing.announce(self._bus, job)
        return touched

    async def _claim_all(self, hardware: FlashHardware) -> list[asyncio.Task[FlashJob | None]]:
        started: list[asyncio.Task[FlashJob | None]] = []
        while len(self._running) < self._max_jobs:
            try:
                async with self._sessions() as session:
                    job = await flashing.claim_next(session=session, worker=self.name, policy=self._policy)
                    await session.commit()
            except Exception:
                log.exception("claiming a flash job failed")
                return started
            if job is None:
                return started
            started.append(self._start(job, hardware))
        return started

    def _start(self, job: FlashJob, hardware: FlashHardware) -> asyncio.Task[FlashJob | None]:
        task = asyncio.create_task(
            run.run_job(
                sessions=self._sessions,
                job=job,
                worker=self.name,
                hardware=hardware,
                store=self._store,
                policy=self._policy,
                bus=self._bus,
                scratch=self._scratch,
            ),
            name=f"flash-{job.id}",
        )
        self._running[job.id] = task
        task.add_done_callback(lambda t: self._finished(job.id, t))
        return task

    def _finished(self, job_id: int, task: asyncio.Task[FlashJob | None]) -> None:
        self._running.pop(job_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("flash job %s: the worker failed", job_id, exc_info=task.exception())

    async def _stop_all(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
