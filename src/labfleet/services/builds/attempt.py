"""One attempt of a build job on its server, and what becomes of the job by how it ended (R3).

``BuildAttempts.run`` makes the plan from the job's row (its server, the toolchain for the
architecture, the workspace and process group a previous attempt left) and runs it over
SSH (``run.BuildRun``), recording as it goes what a takeover would need. ``conclude``
records the end: artifacts stored and the job ``succeeded`` in one transaction with their
rows; ``failed`` with the reason; requeued after a device error until ``max_attempts``;
``cancelled``; or, the lease lost, nothing at all. Every write is made only while the
worker still holds the job's lease (``LeaseLost`` otherwise).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models import BuildJob
from labfleet.db.models.builds import CANCELLED, FAILED, SUCCEEDED
from labfleet.errors import DeviceError
from labfleet.schemas.auth import SYSTEM
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts import service as artifacts
from labfleet.services.artifacts.service import Store
from labfleet.services.builds import queue as build_queue
from labfleet.services.builds.logs import JobLog
from labfleet.services.builds.run import (
    BuildFailed,
    BuildPlan,
    BuildResult,
    BuildRun,
    SshPool,
    choose_toolchain,
)
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core.leases import LeaseLost
from labfleet.services.inventory import credentials

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]


class Stopped(Exception):
    """Why a run was stopped from outside: a cancel, a lost lease, the worker stopping."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class Tracker:
    """Where a run keeps what a takeover needs: its remote workspace and group, the commit it built."""

    def __init__(self, sessions: Sessions, job_id: int, worker: str) -> None:
        self._sessions = sessions
        self._job_id = job_id
        self._worker = worker

    async def remote(self, workspace: str | None, group: str | None) -> None:
        async with self._sessions() as session:
            await build_queue.set_remote(
                session=session, job_id=self._job_id, worker=self._worker, workspace=workspace, group=group
            )
            await session.commit()

    async def commit(self, commit: str) -> None:
        async with self._sessions() as session:
            await build_queue.set_commit(
                session=session, job_id=self._job_id, worker=self._worker, commit=commit
            )
            await session.commit()


@dataclass(frozen=True, slots=True)
class BuildAttempts:
    sessions: Sessions
    secrets: SecretBox
    store: Store
    policy: BuildPolicy
    worker: str

    async def run(self, job: BuildJob, joblog: JobLog, scratch: Path) -> BuildResult:
        async with self.sessions() as session:
            found = await build_queue.server_and_toolchains(
                session=session, server_id=job.build_server_id, architecture=job.architecture
            )
        if found is None:
            raise BuildFailed("its build server was removed")
        server, chains = found
        target = credentials.ssh_target(self.secrets, server)
        hostname = server.hostname
        plan = BuildPlan(
            job_id=job.id,
            attempt=job.attempt,
            repository_url=job.repository_url,
            branch=job.branch,
            commit=job.requested_commit,
            command=job.command,
            defconfig=job.defconfig,
            make_target=job.make_target,
            artifacts=list(job.artifact_specs),
            timeout_s=float(job.timeout_s),
            toolchain=choose_toolchain(job.architecture, chains),
            previous_workspace=job.workspace,
            previous_group=job.remote_group,
        )
        joblog.note(f"attempt {job.attempt} of build job {job.id} on {hostname}, worker {self.worker}")
        await joblog.flush()  # stored at once: a follower that connects now finds it there
        # A connection of its own: a build holds its SSH session for as long as it runs, and
        # sshd allows only so many sessions per connection (MaxSessions, 10 by default).
        async with SshPool() as pool:
            run = BuildRun(
                pool=pool,
                target=target,
                plan=plan,
                log=joblog,
                scratch=scratch,
                tracker=Tracker(self.sessions, job.id, self.worker),
            )
            return await run.run()

    async def conclude(self, job: BuildJob, joblog: JobLog, outcome: BuildResult | BaseException) -> None:
        if isinstance(outcome, BuildResult):
            await self.succeed(job, joblog, outcome)
        elif isinstance(outcome, Stopped):
            if outcome.kind == "cancel":
                joblog.note(f"{outcome.reason}: the remote process group was killed")
                await self.end(job, joblog, CANCELLED, outcome.reason)
            elif outcome.kind == "shutdown":
                joblog.note(outcome.reason)
                await self.requeue(job, joblog, outcome.reason)
            else:
                log.warning("build job %s: %s; leaving it to its new holder", job.id, outcome.reason)
        elif isinstance(outcome, LeaseLost):
            raise outcome
        elif isinstance(outcome, BuildFailed):
            joblog.note(f"failed: {outcome.message}")
            await self.end(job, joblog, FAILED, outcome.message)
        elif isinstance(outcome, DeviceError):
            reason = f"the build server could not be used: {outcome.message}"
            joblog.note(reason)
            if job.attempt >= self.policy.max_attempts:
                await self.end(
                    job,
                    joblog,
                    FAILED,
                    f"{reason}; all {self.policy.max_attempts} attempts used",
                )
            else:
                await self.requeue(job, joblog, reason)
        elif isinstance(outcome, Exception):
            log.error("build job %s failed unexpectedly", job.id, exc_info=outcome)
            joblog.note(f"labfleet failed while running the build: {outcome}")
            await self.end(job, joblog, FAILED, f"labfleet failed while running the build: {outcome}")
        else:
            raise outcome

    async def succeed(self, job: BuildJob, joblog: JobLog, result: BuildResult) -> None:
        blobs = []
        for f in result.files:
            blobs.append((f, await self.store.put_file(f.path, expected=f.sha256)))
        joblog.note(f"succeeded: {len(blobs)} artifact(s) stored")
        await joblog.flush()
        async with self.sessions() as session:
            done = await build_queue.finish_held(
                session=session, job_id=job.id, worker=self.worker, status=SUCCEEDED
            )
            if not done:
                raise LeaseLost(f"build job {job.id}: lost the lease before recording its success")
            fresh = await build_queue.job(session=session, job_id=job.id)
            assert fresh is not None
            for f, blob in blobs:
                await artifacts.record_artifact(
                    session=session,
                    build_job=fresh,
                    sha256=blob.sha256,
                    size=blob.size,
                    name=f.name,
                    type=f.type,
                    actor=SYSTEM,
                )
            await session.commit()
        # A retention run that started before these rows existed may have freed a blob of the
        # same content in between: put back any that went missing (the files are still here).
        for f, blob in blobs:
            if not await self.store.exists(blob.sha256):
                await self.store.put_file(f.path, expected=f.sha256)

    async def end(self, job: BuildJob, joblog: JobLog, status: str, reason: str) -> None:
        await joblog.flush()
        async with self.sessions() as session:
            if not await build_queue.finish_held(
                session=session, job_id=job.id, worker=self.worker, status=status, failure_reason=reason
            ):
                raise LeaseLost(f"build job {job.id}: lost the lease before recording {status}")
            await session.commit()

    async def requeue(self, job: BuildJob, joblog: JobLog, reason: str) -> None:
        await joblog.flush()
        async with self.sessions() as session:
            await build_queue.release_held(session=session, job_id=job.id, worker=self.worker, reason=reason)
            await session.commit()
