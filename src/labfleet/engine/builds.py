"""The build worker: claims queued builds for free server slots and runs them under a lease.

One worker per ``labfleet serve`` process. It claims a job for a free slot of a server
(``claim_for_server``: the server's row is locked, so processes never overfill a server),
runs it (``BuildRun``), heartbeats while it runs and stops it when its lease is lost or a
cancel is asked for. It also recovers other workers' expired leases, so a process killed
mid-build loses nothing: its jobs are requeued (or failed once out of attempts).

What the worker does with how a run ended:

- success: artifacts into the store (checked against the SHA-256 measured on the server),
  then, in one transaction, the job finished as ``succeeded`` and the artifact rows;
- ``BuildFailed`` (the build itself failed): ``failed`` with the reason;
- a device error (server unreachable, SSH broke): requeued for another attempt, maybe on
  another server, or ``failed`` once ``max_attempts`` are used;
- a cancel asked for: the remote process group killed, ``cancelled``;
- the lease lost (recovered by another process, server taken offline): nothing is recorded;
- the worker stopping: the remote group killed, the job requeued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.worker import StoreWorker, WorkerOptions
from labfleet.schemas.enums import BuildJobStatus
from labfleet.schemas.settings import LabSettings
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts.service import Store as ArtifactStore
from labfleet.services.builds import BuildJob
from labfleet.services.builds import queue as build_queue
from labfleet.services.builds import service as builds
from labfleet.services.builds.attempt import BuildAttempts, Stopped
from labfleet.services.builds.logs import JobLog
from labfleet.services.builds.run import BuildResult
from labfleet.services.core.events import EventBus, Subscription
from labfleet.services.core.leases import LeaseKeeper, LeaseLost, Renewal
from labfleet.services.health import tuning

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


async def _forward(wake: asyncio.Event, keeper: LeaseKeeper) -> None:
    """A cancel announced on the bus sets ``wake``: the keeper renews at once and sees it."""
    while True:
        await wake.wait()
        wake.clear()
        keeper.wake()


@dataclass
class _Running:
    job: BuildJob
    task: asyncio.Task[None]
    wake: asyncio.Event
    stop: Stopped | None = None


class BuildWorker(StoreWorker[builds.BuildPolicy]):
    def __init__(
        self,
        *,
        sessions: Sessions,
        bus: EventBus,
        store: ArtifactStore,
        secrets: SecretBox,
        policy: builds.BuildPolicy,
        max_builds: int = 16,
        lab: Callable[[], LabSettings] | None = None,
        **options: Unpack[WorkerOptions],
    ) -> None:
        """``lab``: the lab settings now, whose disk thresholds (a server's own, if it has an
        override) decide which servers take a build."""
        super().__init__(sessions, bus, store, secrets, policy, **options)
        self._lab = lab
        self._max_builds = max_builds
        self._running: dict[int, _Running] = {}
        self._wake = asyncio.Event()
        self._attempts = BuildAttempts(
            sessions=sessions, secrets=secrets, store=store, policy=policy, worker=self.name
        )

    # -- the loop

    async def run(self) -> None:
        """Claim and run builds until cancelled; then stop what runs and requeue it."""
        sub = self._bus.subscribe([builds.TOPIC_ALL])
        try:
            while True:
                await self._recover_if_due()
                await self._claim_all()
                await self._sleep(sub)
        finally:
            sub.close()
            await self._stop_all()

    async def _sleep(self, sub: Subscription) -> None:
        self._wake.clear()
        waiter = asyncio.ensure_future(self._wake.wait())
        getter = asyncio.ensure_future(sub.get(timeout=self._poll))
        try:
            done, _ = await asyncio.wait(
                {waiter, getter}, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done and (event := getter.result()) is not None:
                self._on_event(event.data)
                # Take whatever else is waiting, so a burst of submissions is one claim round.
                while (more := await sub.get(timeout=0)) is not None:
                    self._on_event(more.data)
        finally:
            for t in (waiter, getter):
                t.cancel()
            await asyncio.gather(waiter, getter, return_exceptions=True)

    def _on_event(self, data: dict[str, object]) -> None:
        job_id = data.get("job")
        running = self._running.get(job_id) if isinstance(job_id, int) else None
        if running is not None and data.get("cancel_requested"):
            running.wake.set()  # its heartbeat looks now, and sees the cancel

    async def recover(self) -> list[tuple[int, str]]:
        return await recover(sessions=self._sessions, bus=self._bus, max_attempts=self._policy.max_attempts)

    def _disk_critical_gb(self, server_id: int) -> float:
        if self._lab is None:
            return self._policy.thresholds.disk_critical_gb
        return tuning.disk_critical_gb(self._lab(), server_id)

    async def _claim_all(self) -> None:
        if len(self._running) >= self._max_builds:
            return
        try:
            async with self._sessions() as session:
                rows = await build_queue.servers(session=session)
        except Exception:
            log.exception("could not read the build servers")
            return
        for row in rows:
            server = row.server
            if server.status not in ("online", "degraded") or not row.architectures:
                continue
            free = server.max_concurrent_builds - row.running
            while free > 0 and len(self._running) < self._max_builds:
                try:
                    async with self._sessions() as session:
                        job = await build_queue.claim_for_server(
                            session=session,
                            server_id=server.id,
                            architectures=row.architectures,
                            worker=self.name,
                            lease_seconds=self._policy.lease_seconds,
                            disk_critical_gb=self._disk_critical_gb(server.id),
                        )
                        await session.commit()
                except Exception:
                    log.exception("claiming a build for %s failed", server.hostname)
                    break
                if job is None:
                    break
                free -= 1
                self._start(job)

    def _start(self, job: BuildJob) -> None:
        wake = asyncio.Event()
        task = asyncio.create_task(self._execute(job, wake), name=f"build-{job.id}")
        self._running[job.id] = _Running(job=job, task=task, wake=wake)
        task.add_done_callback(lambda _: self._finished(job.id))

    def _finished(self, job_id: int) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    async def _stop_all(self) -> None:
        for running in self._running.values():
            running.stop = Stopped("shutdown", f"labfleet worker {self.name} stopped; requeued")
            running.task.cancel()
        tasks = [r.task for r in self._running.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- one job

    async def _execute(self, job: BuildJob, wake: asyncio.Event) -> None:
        joblog = JobLog(
            sessions=self._sessions, bus=self._bus, job_id=job.id, worker=self.name, offset=job.log_size
        )
        flusher = asyncio.create_task(joblog.run(), name=f"build-{job.id}-log")
        scratch = Path(tempfile.mkdtemp(prefix=f"labfleet-build-{job.id}-", dir=self._scratch))
        self._announce(job)
        try:
            outcome = await self._attempt(job, joblog, wake, scratch)
            await self._attempts.conclude(job, joblog, outcome)
        except LeaseLost as exc:
            log.warning("%s", exc)
        except Exception:
            log.exception("build job %s: the worker failed", job.id)
            with contextlib.suppress(Exception):
                await self._attempts.end(
                    job,
                    joblog,
                    BuildJobStatus.failed,
                    "labfleet failed while running the build (see its logs)",
                )
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost, Exception):
                await flusher
            shutil.rmtree(scratch, ignore_errors=True)
            with contextlib.suppress(Exception):
                await self._announce_fresh(job.id)

    async def _attempt(
        self, job: BuildJob, joblog: JobLog, wake: asyncio.Event, scratch: Path
    ) -> BuildResult | BaseException:
        """Run the build beside its heartbeat; returns the result or what ended it."""
        run_task = asyncio.create_task(self._attempts.run(job, joblog, scratch), name=f"build-{job.id}-run")
        keeper = self._keeper(job, run_task)
        beat_task = asyncio.create_task(keeper.run(), name=f"build-{job.id}-beat")
        waker = asyncio.create_task(_forward(wake, keeper), name=f"build-{job.id}-wake")
        try:
            return await run_task
        except asyncio.CancelledError:
            running = self._running.get(job.id)
            stop = running.stop if running is not None else None
            if stop is None:
                current = asyncio.current_task()
                if current is None or not current.cancelling():
                    raise
                # The worker itself is being cancelled (engine stopping).
                stop = Stopped("shutdown", f"labfleet worker {self.name} stopped; requeued")
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                current.uncancel()  # handled: the job is concluded below, not abandoned
            # Let the cancelled run finish its clean-up (it kills the remote group first).
            with contextlib.suppress(BaseException):
                await run_task
            return stop
        except BaseException as exc:
            return exc
        finally:
            beat_task.cancel()
            waker.cancel()
            await asyncio.gather(beat_task, waker, return_exceptions=True)

    def _keeper(self, job: BuildJob, run_task: asyncio.Task[BuildResult]) -> LeaseKeeper:
        """The build's lease: a lost lease or a cancel stops the run (its clean-up kills the remote group)."""

        async def renew() -> Renewal:
            async with self._sessions() as session:
                held, cancel = await build_queue.beat(
                    session=session, job_id=job.id, worker=self.name, lease_seconds=self._policy.lease_seconds
                )
                await session.commit()
                by = None
                if held and cancel:
                    fresh = await build_queue.job(session=session, job_id=job.id)
                    by = (fresh.cancel_requested_by if fresh is not None else None) or "request"
            return Renewal(held=held, cancel_requested_by=by)

        def stop(why: Stopped) -> None:
            running = self._running.get(job.id)
            if running is not None and running.stop is None:
                running.stop = why
            run_task.cancel()

        return LeaseKeeper(
            what=f"build job {job.id}",
            renew=renew,
            lease_seconds=self._policy.lease_seconds,
            heartbeat_seconds=self._policy.heartbeat_seconds,
            on_lost=lambda: stop(Stopped("lost", f"worker {self.name} lost the lease")),
            on_cancel=lambda by: stop(Stopped("cancel", f"cancelled by {by}")),
        )

    def _announce(self, job: BuildJob) -> None:
        builds.announce(self._bus, job)

    async def _announce_fresh(self, job_id: int) -> None:
        async with self._sessions() as session:
            job = await build_queue.job(session=session, job_id=job_id)
        if job is not None:
            builds.announce(self._bus, job)


async def recover(*, sessions: Sessions, bus: EventBus, max_attempts: int) -> list[tuple[int, str]]:
    """Requeue or fail the running jobs whose worker stopped heartbeating, saying so in their logs."""
    async with sessions() as session:
        touched = await build_queue.recover_expired(session=session, max_attempts=max_attempts)
        for job_id, outcome in touched:
            job = await build_queue.job(session=session, job_id=job_id)
            reason = job.failure_reason if job is not None else None
            await build_queue.note_unheld(
                session=session, job_id=job_id, line=f"{reason or 'lease expired'} ({outcome})"
            )
        await session.commit()
    for job_id, _ in touched:
        async with sessions() as session:
            job = await build_queue.job(session=session, job_id=job_id)
        if job is not None:
            builds.announce(bus, job)
    if touched:
        log.warning("recovered build jobs whose worker stopped: %s", touched)
    return touched
