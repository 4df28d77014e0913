"""The pipeline worker: claims pipelines under a lease and runs their stages in order.

Each pipeline runs as a task of its own; a lease keeper renews its lease, notices a cancel
(the running stage is cancelled, the environment released) and a lost lease (the task
stops without writing anything more). A pipeline taken over from a process that died
resumes a build stage (the build job itself is durable) and fails a deploy, boot or test
stage with the reason, after releasing whatever its environment held.

This is orchestration only: the stages' statuses are written by ``services/pipelines/
progress.py``, the build by ``build_stage.py``, the environment (waiting for a resource,
moving to another when one is to blame) by ``environment.py``, the tests by ``testing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.engine.loops import utcnow
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import PipelineStatus, Role, StageStatus
from labfleet.schemas.pipelines import TestCase
from labfleet.services.builds.logs import JobLog
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import LeaseKeeper, LeaseLost, Renewal
from labfleet.services.environments.provisioning import Provisioner, ProvisionFailed
from labfleet.services.pipelines import progress
from labfleet.services.pipelines import service as pipelines
from labfleet.services.pipelines.build_stage import BuildStage
from labfleet.services.pipelines.environment import PipelineEnvironment, StageFailed
from labfleet.services.pipelines.progress import Stage
from labfleet.services.pipelines.settings import PipelineSettings
from labfleet.services.pipelines.testing import Outcome, run_tests

log = logging.getLogger(__name__)


class PipelineWorker:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        provisioner: Provisioner,
        build_policy: BuildPolicy,
        settings: PipelineSettings = PipelineSettings(),
        name: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.provisioner = provisioner
        self.build_policy = build_policy
        self.settings = settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:pipelines"
        self._runs: dict[int, asyncio.Task[None]] = {}
        self._queues: dict[str, set[int]] = {}

    def queue_for(self, request: str) -> set[int]:
        """The pipelines of this worker waiting for a target of exactly this request."""
        return self._queues.setdefault(request, set())

    async def run(self) -> None:
        """Claim while there is work; then wait for a pipeline to be queued (an event) or the
        poll interval (leases that expired, events from processes that cannot send them)."""
        try:
            async with self.bus.listening([pipelines.TOPIC_ALL]) as queued:
                while True:
                    claimed = None
                    if len(self._runs) < self.settings.max_pipelines:
                        try:
                            claimed = await self.claim()
                        except Exception:
                            log.exception("claiming a pipeline failed")
                    if claimed is None:
                        await _next_queued(queued, self.settings.poll_seconds)
        finally:
            await self.stop()

    async def claim(self) -> int | None:
        async with self.sessions() as session:
            found = await pipelines.claim_next(
                session, worker=self.name, lease_seconds=self.settings.lease_seconds, now=utcnow()
            )
            await session.commit()
        if found is None:
            return None
        pipeline, previous = found
        ident = pipeline.id
        run = _Run(self, pipeline, previous)
        task = asyncio.create_task(run.go(), name=f"pipeline-{ident}")
        self._runs[ident] = task
        task.add_done_callback(lambda _: self._runs.pop(ident, None))
        return ident

    async def stop(self) -> None:
        """Stop every run and give up their leases at once, so a new process takes them over."""
        tasks = list(self._runs.items())
        for _, task in tasks:
            task.cancel()
        await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)
        for ident, _ in tasks:
            with contextlib.suppress(Exception):
                await progress.give_up_lease(self.sessions, ident, self.name)

    async def wait_idle(self) -> None:
        while self._runs:
            await asyncio.gather(*self._runs.values(), return_exceptions=True)


async def _next_queued(sub: Any, timeout: float) -> None:
    """Until a pipeline is queued (or its run ends: capacity) or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        event = await sub.get(timeout=left)
        if event is None or event.data.get("status") != PipelineStatus.running:
            return


class _Run:
    """One pipeline, held by this worker."""

    def __init__(self, worker: PipelineWorker, pipeline: Any, previous: str | None) -> None:
        self.w = worker
        self.sessions = worker.sessions
        self.id: int = pipeline.id
        self.previous = previous if previous != worker.name else None
        self.spec: dict[str, Any] = dict(pipeline.spec)
        actor = Actor(name=pipeline.submitted_by, role=Role.operator, team=pipeline.team)
        self.log = JobLog(
            sessions=worker.sessions,
            bus=worker.bus,
            job_id=pipeline.id,
            worker=worker.name,
            offset=pipeline.log_size,
            kind=pipelines.LOGS,
        )
        self.env = PipelineEnvironment(
            sessions=worker.sessions,
            provisioner=worker.provisioner,
            settings=worker.settings,
            pipeline_id=pipeline.id,
            worker=worker.name,
            actor=actor,
            spec=self.spec,
            kind=pipeline.environment_type,
            architecture=pipeline.architecture,
            say=self.say,
            queue_for=worker.queue_for,
            env_id=pipeline.environment_id,
        )
        self.build = BuildStage(
            sessions=worker.sessions,
            bus=worker.bus,
            policy=worker.build_policy,
            pipeline_id=pipeline.id,
            worker=worker.name,
            actor=actor,
            log=self.log,
            cancelled_by=lambda: self.cancelled_by,
        )
        self.stage_task: asyncio.Task[dict[str, Any]] | None = None
        self.cancelled_by: str | None = None
        self.lost = False

    def say(self, line: str) -> None:
        self.log.note(line)

    # -- the lease

    async def go(self) -> None:
        flusher = asyncio.create_task(self.log.run())
        main = asyncio.create_task(self._stages())
        keeper = LeaseKeeper(
            what=f"pipeline {self.id}",
            renew=self._renew,
            lease_seconds=self.w.settings.lease_seconds,
            heartbeat_seconds=self.w.settings.heartbeat_seconds,
            on_lost=lambda: self._lose(main),
            on_cancel=self._cancel_asked,
        )
        beat = asyncio.create_task(keeper.run())
        try:
            await main
        except LeaseLost:
            self.lost = True
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not keeper.lost or (current is not None and current.cancelling()):
                main.cancel()
                raise
        except Exception:
            log.exception("pipeline %s failed in labfleet itself", self.id)
            with contextlib.suppress(Exception):
                await self._internal_failure()
        finally:
            beat.cancel()
            flusher.cancel()
            await asyncio.gather(beat, flusher, return_exceptions=True)
            if not self.lost:
                with contextlib.suppress(LeaseLost, Exception):
                    await self.log.flush()

    async def _renew(self) -> Renewal:
        async with self.sessions() as session:
            row = await pipelines.beat(
                session,
                pipeline_id=self.id,
                worker=self.w.name,
                lease_seconds=self.w.settings.lease_seconds,
                now=utcnow(),
            )
            await session.commit()
        if row is None:
            return Renewal(held=False)
        by = (row.cancel_requested_by or "someone") if row.cancel_requested_at is not None else None
        return Renewal(held=True, cancel_requested_by=by)

    def _lose(self, main: asyncio.Task[None]) -> None:
        self.lost = True  # another worker may have it now: nothing more is written here
        main.cancel()

    def _cancel_asked(self, by: str) -> None:
        self.cancelled_by = by
        if self.stage_task is not None:
            self.stage_task.cancel()

    # -- the stages in order

    async def _stages(self) -> None:
        running = await progress.interrupted(self.sessions, self.id)
        if self.previous is not None or running is not None:
            await self._recover(running)
        else:
            self.say(f"pipeline #{self.id} claimed by {self.w.name}")
        await self._announce()
        while True:
            step = await progress.next_stage(self.sessions, self.id)
            if step.cancel_requested_by and self.cancelled_by is None:
                self.cancelled_by = step.cancel_requested_by
            if step.stage is None:
                break
            if self.cancelled_by is not None:
                await progress.cancel_rest(self.sessions, self.id)
                break
            if await self._run_stage(step.stage) != StageStatus.succeeded:
                break
        await self._conclude()

    async def _run_stage(self, stage: Stage) -> str:
        started = asyncio.get_running_loop().time()
        attempt, resources = await progress.begin(self.sessions, stage.id, log_start=self.log.size)
        await self._announce()
        self.say(f"stage {stage.name} (attempt {attempt}) started")
        self.stage_task = asyncio.create_task(self._work(stage.name, stage.id, attempt, resources))
        error: str | None = None
        try:
            resources = await self.stage_task
            outcome = StageStatus.succeeded
        except asyncio.CancelledError:
            if self.lost or self.cancelled_by is None:
                raise
            outcome, error = StageStatus.cancelled, f"cancelled by {self.cancelled_by}"
        except (StageFailed, ProvisionFailed) as exc:
            outcome, error = StageStatus.failed, exc.message
        except LeaseLost:
            raise
        except Exception as exc:
            log.exception("pipeline %s: stage %s failed in labfleet itself", self.id, stage.name)
            outcome, error = StageStatus.failed, f"internal error: {exc!r}"
        finally:
            self.stage_task = None
        took = asyncio.get_running_loop().time() - started
        self.say(f"stage {stage.name} {outcome} in {took:.1f} s" + (f": {error}" if error else ""))
        await self.log.flush()
        await progress.end(
            self.sessions,
            self.id,
            stage.position,
            outcome,
            error=error,
            log_end=self.log.size,
            resources=resources,
        )
        await self._announce()
        return outcome

    async def _conclude(self) -> None:
        await self.env.release(f"pipeline #{self.id} ended")
        status, error = await progress.conclude(self.sessions, self.id)
        self.say(f"pipeline #{self.id} {status}" + (f": {error}" if error else ""))
        await self.log.flush()  # in a transaction of its own: never inside another (SQLite)
        await progress.finish(self.sessions, self.id, self.w.name, status, error)
        await self._announce()

    async def _internal_failure(self) -> None:
        with contextlib.suppress(Exception):
            await self.env.release("labfleet failed running it")
        await progress.fail_internally(self.sessions, self.id, self.w.name)

    async def _announce(self) -> None:
        async with self.sessions() as session:
            await pipelines.announce(session, self.w.bus, self.id)

    async def _recover(self, running: Stage | None) -> None:
        before = self.previous or "an earlier run of this worker"
        self.say(f"pipeline #{self.id} taken over by {self.w.name}: {before} stopped holding it")
        if running is None:
            return
        if running.name == "build" and running.resources.get("build_job"):
            await progress.follow_build_again(self.sessions, running)
            self.say(f"stage build: following build job #{running.resources['build_job']} again")
            return
        await self.env.release(f"pipeline #{self.id} interrupted")
        reason = (
            f"interrupted: the labfleet process running it ({before}) stopped; "
            "retry the stage to run it again"
        )
        await progress.end(
            self.sessions, self.id, running.position, StageStatus.failed, error=reason, log_end=self.log.size
        )
        self.say(f"stage {running.name} failed: {reason}")

    # -- what each stage does

    async def _work(
        self, name: str, stage_id: int, attempt: int, resources: dict[str, Any]
    ) -> dict[str, Any]:
        work = {"build": self._build, "deploy": self._deploy, "boot": self._boot, "test": self._test}[name]
        return await work(stage_id, attempt, resources)

    async def _build(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        return await self.build.run(stage_id, resources)

    async def _deploy(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        await self.env.release("deploying afresh")
        await self.env.new([])
        return await self.env.provision(stage_id, deploy=True, boot=False, console_log=self.log.write)

    async def _boot(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        held = await self.env.holding()
        if held is None:
            self.say("the environment was released since the deploy stage: deploying again first")
        return await self.env.provision(stage_id, deploy=held is None, boot=True, console_log=self.log.write)

    async def _test(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        env_id = await self.env.ready()
        if env_id is None:
            self.say(
                "no booted environment (it was released when the pipeline stopped): deploying and booting"
            )
            resources = await self.env.provision(stage_id, deploy=True, boot=True, console_log=self.log.write)
            env_id = self.env.env_id
        assert env_id is not None
        cases = [TestCase.model_validate(c) for c in self.spec.get("tests", [])]

        async def record(outcome: Outcome) -> None:
            await progress.record_test(self.sessions, self.id, stage_id, attempt, outcome)
            await self._announce()

        console = await self.w.provisioner.console(env_id)
        async with console:
            failed = await run_tests(console, cases, say=self.say, write=self.log.write, record=record)
        if failed:
            raise StageFailed(f"{len(failed)} of {len(cases)} test(s) failed: {', '.join(failed)}")
        return {**resources, "tests": len(cases)}
