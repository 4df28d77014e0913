"""The build stage: a build job submitted (or the one a retry or a takeover finds), its log
followed into the pipeline's log, and its result (R17.2).

The build job is durable on its own: a pipeline taken over follows the same job again, and
only a cancel of the pipeline (not a worker stopping) cancels the job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models.builds import CANCELLED, FAILED, SUCCEEDED
from labfleet.schemas.auth import Actor
from labfleet.services.builds import logs as build_logs
from labfleet.services.builds import service as builds
from labfleet.services.builds.logs import JobLog
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core.events import EventBus
from labfleet.services.pipelines import progress
from labfleet.services.pipelines import service as pipelines
from labfleet.services.pipelines.environment import StageFailed


@dataclass(frozen=True, slots=True)
class BuildStage:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    policy: BuildPolicy
    pipeline_id: int
    worker: str
    actor: Actor
    log: JobLog
    cancelled_by: Callable[[], str | None]

    async def run(self, stage_id: int, resources: dict[str, Any]) -> dict[str, Any]:
        job_id = await self._job(resources.get("build_job"))
        await progress.add_resources(self.sessions, stage_id, build_job=job_id)
        try:
            status = await self._follow(job_id)
        except asyncio.CancelledError:
            if self.cancelled_by() is not None:  # a cancel of the pipeline, not this worker stopping
                with contextlib.suppress(Exception):
                    async with self.sessions() as session:
                        await builds.cancel(session=session, actor=self.actor, ident=job_id)
                        await session.commit()
            raise
        async with self.sessions() as session:
            job = await builds.get(session=session, ident=job_id, refresh=True)
            server = (await builds.server_names(session)).get(job.build_server_id or 0)
            if job.resolved_commit:
                await pipelines.update_held(
                    session,
                    pipeline_id=self.pipeline_id,
                    worker=self.worker,
                    values={"resolved_commit": job.resolved_commit},
                )
            await session.commit()
        out = {"build_job": job.id, "build_server": server, "commit": job.resolved_commit}
        if status != SUCCEEDED:
            await progress.add_resources(self.sessions, stage_id, **out)
            raise StageFailed(f"build job #{job.id} {status}: {job.failure_reason}")
        return out

    async def _job(self, known: object) -> int:
        """The build job to follow: the stage's own unless it failed (a retry builds again)."""
        if known is not None:
            async with self.sessions() as session:
                job = await builds.get(session=session, ident=int(str(known)), refresh=True)
            if job.status not in (FAILED, CANCELLED):
                return job.id
        async with self.sessions() as session:
            p = await pipelines.get(session=session, ident=self.pipeline_id)
            job = await builds.submit(
                session=session, actor=self.actor, policy=self.policy, data=pipelines.build_request(p)
            )
            await progress.set_held(session, self.pipeline_id, self.worker, build_job_id=job.id)
            await session.commit()
            builds.announce(self.bus, job)
        self.log.note(f"submitted build job #{job.id}")
        return job.id

    async def _follow(self, job_id: int) -> str:
        offset = 0
        while True:
            async for item in build_logs.follow(
                sessions=self.sessions, bus=self.bus, job_id=job_id, offset=offset
            ):
                if isinstance(item, build_logs.Piece):
                    self.log.write(item.data.decode("utf-8", "replace"))
                    offset = item.offset + len(item.data)
                elif isinstance(item, build_logs.End):
                    return item.status
            # The follower lagged: go on from where we are.
