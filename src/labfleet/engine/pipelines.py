"""The pipeline worker: claims pipelines under a lease and runs their stages in order.

Each pipeline runs as a task of its own; a heartbeat renews its lease, notices a cancel
(the running stage is cancelled, the environment released) and a lost lease (the task
stops without writing anything more). A pipeline taken over from a process that died
resumes a build stage (the build job itself is durable) and fails a deploy, boot or test
stage with the reason, after releasing whatever its environment held.

A deploy or boot that fails is followed by a health check of the resource: if it fails,
the environment is torn down and made again on another resource, when one can take it
(property 24); if it passes, the artifacts are to blame and the stage fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.models import Pipeline, PipelineStage, TestResult
from labfleet.db.models.builds import CANCELLED as BUILD_CANCELLED
from labfleet.db.models.builds import FAILED as BUILD_FAILED
from labfleet.db.models.builds import SUCCEEDED as BUILD_SUCCEEDED
from labfleet.db.models.environments import ENV_HOLDING, ENV_READY
from labfleet.db.models.pipelines import (
    CANCELLED,
    FAILED,
    PASSED,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
)
from labfleet.errors import DeviceError, Invalid, LabfleetError, Unavailable
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.environments import EnvironmentCreate
from labfleet.schemas.pipelines import TestCase
from labfleet.services.builds import logs as build_logs
from labfleet.services.builds import service as builds
from labfleet.services.builds.logs import JobLog
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core.events import EventBus
from labfleet.services.core.leases import LeaseKeeper, LeaseLost, Renewal
from labfleet.services.environments import service as environments
from labfleet.services.environments.kinds import KINDS
from labfleet.services.environments.provisioning import Provisioner, ProvisionFailed
from labfleet.services.pipelines import service as pipelines
from labfleet.services.pipelines import stages as pipeline_stages

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSettings:
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 5.0
    poll_seconds: float = 5.0
    """Also woken at once when a pipeline is queued in this process (or, on PostgreSQL, any)."""
    max_pipelines: int = 32
    resource_wait_s: float = 3600.0
    """How long a deploy waits for a host or board to come free before it fails."""
    resource_retry_s: float = 3.0
    max_resources: int = 3
    """Resources tried in all when provisioning fails on them."""
    environment_hold_s: int = 6 * 3600
    """The expiry of a pipeline's reservation: a safety net, it is released when the pipeline ends."""


class StageFailed(LabfleetError):
    pass


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
        task = asyncio.create_task(_Run(self, pipeline, previous).go(), name=f"pipeline-{ident}")
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
                async with self.sessions() as session:
                    await pipelines.update_held(
                        session, pipeline_id=ident, worker=self.name, values={"lease_expires_at": utcnow()}
                    )
                    await session.commit()

    async def wait_idle(self) -> None:
        while self._runs:
            await asyncio.gather(*self._runs.values(), return_exceptions=True)


async def _next_queued(sub: Any, timeout: float) -> None:
    """Until a pipeline is queued (or its run ends: capacity) or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        event = await sub.get(timeout=left)
        if event is None or event.data.get("status") != RUNNING:
            return


def _why_not_now(exc: Unavailable) -> str:
    """The refusal with what each alternative lacks, so a wait says what it waits for."""
    lacks = []
    for alt in exc.alternatives[:3]:
        reasons = "; ".join(str(r.get("message", r)) for r in alt.get("lacks", []) if isinstance(r, dict))
        lacks.append(f"{alt.get('name')}: {reasons or alt.get('message') or 'busy'}")
    return exc.message + (f" ({' | '.join(lacks)})" if lacks else "")


class _Run:
    """One pipeline, held by this worker."""

    def __init__(self, worker: PipelineWorker, pipeline: Pipeline, previous: str | None) -> None:
        self.w = worker
        self.id = pipeline.id
        self.previous = previous if previous != worker.name else None
        self.spec: dict[str, Any] = dict(pipeline.spec)
        self.kind = pipeline.environment_type
        self.arch = pipeline.architecture
        self.actor = Actor(name=pipeline.submitted_by, role=Role.operator, team=pipeline.team)
        self.env_id: int | None = pipeline.environment_id
        self.log = JobLog(
            sessions=worker.sessions,
            bus=worker.bus,
            job_id=pipeline.id,
            worker=worker.name,
            offset=pipeline.log_size,
            kind=pipelines.LOGS,
        )
        self.stage_task: asyncio.Task[dict[str, Any]] | None = None
        self.cancelled_by: str | None = None
        self.lost = False

    def say(self, line: str) -> None:
        self.log.note(line)

    # -- the run

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
        async with self.w.sessions() as session:
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

    async def _stages(self) -> None:
        async with self.w.sessions() as session:
            interrupted = any(r.status == RUNNING for r in await pipelines.stages(session, self.id))
        if self.previous is not None or interrupted:
            await self._recover()
        else:
            self.say(f"pipeline #{self.id} claimed by {self.w.name}")
        await self._announce()
        while True:
            async with self.w.sessions() as session:
                rows = await pipelines.stages(session, self.id)
                p = await pipelines.get(session=session, ident=self.id, refresh=True)
                cancel_by = p.cancel_requested_by if p.cancel_requested_at else None
            if cancel_by and self.cancelled_by is None:
                self.cancelled_by = cancel_by
            index = pipeline_stages.next_to_run([r.status for r in rows])
            if index is None:
                break
            if self.cancelled_by is not None:
                await self._set_stages(rows, pipeline_stages.cancel([r.status for r in rows]))
                break
            stage = rows[index]
            outcome = await self._run_stage(stage)
            if outcome != SUCCEEDED:
                break
        await self._conclude()

    async def _run_stage(self, stage: PipelineStage) -> str:
        name = stage.name
        started = utcnow()
        async with self.w.sessions() as session:
            row = await session.get(PipelineStage, stage.id, populate_existing=True)
            assert row is not None
            row.status, row.attempt, row.started_at = RUNNING, row.attempt + 1, started
            row.finished_at, row.error, row.log_start, row.log_end = None, None, self.log.size, None
            resources = dict(row.resources)
            attempt = row.attempt
            await session.commit()
        await self._announce()
        self.say(f"stage {name} (attempt {attempt}) started")
        work = {"build": self._build, "deploy": self._deploy, "boot": self._boot, "test": self._test}[name]
        self.stage_task = asyncio.create_task(work(stage.id, attempt, resources))
        error: str | None = None
        try:
            resources = await self.stage_task
            outcome = SUCCEEDED
        except asyncio.CancelledError:
            if self.lost or self.cancelled_by is None:
                raise
            outcome, error = CANCELLED, f"cancelled by {self.cancelled_by}"
        except (StageFailed, ProvisionFailed) as exc:
            outcome, error = FAILED, exc.message
        except LeaseLost:
            raise
        except Exception as exc:
            log.exception("pipeline %s: stage %s failed in labfleet itself", self.id, name)
            outcome, error = FAILED, f"internal error: {exc!r}"
        finally:
            self.stage_task = None
        took = (utcnow() - started).total_seconds()
        self.say(f"stage {name} {outcome} in {took:.1f} s" + (f": {error}" if error else ""))
        await self.log.flush()
        async with self.w.sessions() as session:
            rows = await pipelines.stages(session, self.id)
            statuses = pipeline_stages.finish([r.status for r in rows], stage.position, outcome)
            for r, status in zip(rows, statuses, strict=True):
                r.status = status
            row = rows[stage.position]
            row.finished_at, row.error, row.log_end = utcnow(), error, self.log.size
            row.resources = {**row.resources, **(resources if isinstance(resources, dict) else {})}
            await session.commit()
        await self._announce()
        return outcome

    async def _set_stages(self, rows: list[PipelineStage], statuses: list[str]) -> None:
        async with self.w.sessions() as session:
            for r, status in zip(await pipelines.stages(session, self.id), statuses, strict=True):
                r.status = status
            await session.commit()

    async def _set_resources(self, stage_id: int, **values: Any) -> dict[str, Any]:
        async with self.w.sessions() as session:
            row = await session.get(PipelineStage, stage_id, populate_existing=True)
            assert row is not None
            row.resources = {**row.resources, **values}
            out = dict(row.resources)
            await session.commit()
        await self._announce()
        return out

    async def _conclude(self) -> None:
        await self._release(f"pipeline #{self.id} ended")
        async with self.w.sessions() as session:
            rows = await pipelines.stages(session, self.id)
        status = pipeline_stages.overall([r.status for r in rows], claimed=True)
        stopped = next((r for r in rows if r.status in (FAILED, CANCELLED)), None)
        error = f"stage {stopped.name} {stopped.status}: {stopped.error}" if stopped else None
        if status == RUNNING:  # nothing left to run, yet not all succeeded: cannot happen
            status, error = FAILED, "stages left in an inconsistent state"
        self.say(f"pipeline #{self.id} {status}" + (f": {error}" if error else ""))
        await self.log.flush()  # in a transaction of its own: never inside another (SQLite)
        async with self.w.sessions() as session:
            await pipelines.update_held(
                session,
                pipeline_id=self.id,
                worker=self.w.name,
                values={
                    "status": status,
                    "error": error,
                    "finished_at": utcnow(),
                    "lease_owner": None,
                    "lease_expires_at": None,
                },
            )
            await session.commit()
        await self._announce()

    async def _internal_failure(self) -> None:
        with contextlib.suppress(Exception):
            await self._release("labfleet failed running it")
        async with self.w.sessions() as session:
            rows = await pipelines.stages(session, self.id)
            for r in rows:
                if r.status == RUNNING:
                    r.status, r.error = FAILED, "internal error in labfleet (see its log)"
                elif r.status == PENDING:
                    r.status = SKIPPED
            await pipelines.update_held(
                session,
                pipeline_id=self.id,
                worker=self.w.name,
                values={"status": FAILED, "error": "internal error in labfleet", "finished_at": utcnow()},
            )
            await session.commit()

    async def _announce(self) -> None:
        async with self.w.sessions() as session:
            await pipelines.announce(session, self.w.bus, self.id)

    # -- recovery

    async def _recover(self) -> None:
        before = self.previous or "an earlier run of this worker"
        self.say(f"pipeline #{self.id} taken over by {self.w.name}: {before} stopped holding it")
        async with self.w.sessions() as session:
            rows = await pipelines.stages(session, self.id)
            running = next((r for r in rows if r.status == RUNNING), None)
            if running is not None and running.name == "build" and running.resources.get("build_job"):
                running.status = PENDING  # the build job is durable: follow it again
                self.say(f"stage build: following build job #{running.resources['build_job']} again")
                await session.commit()
                return
            await session.commit()
        if running is None:
            return
        await self._release(f"pipeline #{self.id} interrupted")
        reason = (
            f"interrupted: the labfleet process running it ({before}) stopped; "
            f"retry the stage to run it again"
        )
        async with self.w.sessions() as session:
            rows = await pipelines.stages(session, self.id)
            statuses = pipeline_stages.finish([r.status for r in rows], running.position, FAILED)
            for r, status in zip(rows, statuses, strict=True):
                r.status = status
            rows[running.position].error = reason
            rows[running.position].finished_at = utcnow()
            rows[running.position].log_end = self.log.size
            await session.commit()
        self.say(f"stage {running.name} failed: {reason}")

    # -- environments

    def _environment_request(self) -> EnvironmentCreate:
        return EnvironmentCreate.model_validate(
            {
                "kind": self.kind,
                "architecture": self.arch,
                "artifacts": {"build_id": self._build_id},
                "target": self.spec.get("target", "auto"),
                "requirements": self.spec.get("requirements") or {},
                "boot": self.spec.get("boot") or {},
                "purpose": f"pipeline #{self.id}",
                "expires_in_s": self.w.settings.environment_hold_s,
            }
        )

    @property
    def _build_id(self) -> int:
        build = self.spec.get("_build_job")
        if build is None:
            raise StageFailed("the build stage has no build job: retry from the build stage")
        return int(build)

    async def _load_build_id(self) -> None:
        async with self.w.sessions() as session:
            p = await pipelines.get(session=session, ident=self.id, refresh=True)
            if p.build_job_id is not None:
                self.spec["_build_job"] = p.build_job_id

    async def _new_environment(self, skip: list[int], *, wait: bool = True) -> int:
        await self._load_build_id()
        data = self._environment_request()
        deadline = asyncio.get_running_loop().time() + self.w.settings.resource_wait_s
        turn = self.w.queue_for(
            data.model_dump_json(include={"kind", "architecture", "target", "requirements"})
        )
        turn.add(self.id)
        try:
            return await self._reserve_in_turn(data, skip, turn, wait=wait, deadline=deadline)
        finally:
            turn.discard(self.id)

    async def _reserve_in_turn(
        self, data: EnvironmentCreate, skip: list[int], turn: set[int], *, wait: bool, deadline: float
    ) -> int:
        """Pipelines asking for the same thing are served oldest first: a younger one tries only
        when no older one is waiting for it (in this process)."""
        loop = asyncio.get_running_loop()
        waiting_said = None
        while True:
            if wait and min(turn) < self.id:
                if waiting_said is None:
                    waiting_said = f"behind pipeline #{min(turn)}"
                    self.say(
                        f"waiting behind older pipelines asking for the same target (#{min(turn)} first)"
                    )
                await asyncio.sleep(self.w.settings.resource_retry_s / 3)
                if loop.time() > deadline:
                    raise StageFailed(
                        f"no {self.kind} target came free within {self.w.settings.resource_wait_s:g} s"
                    )
                continue
            try:
                async with self.w.sessions() as session:
                    env = await environments.create(
                        session=session, actor=self.actor, data=data, pipeline_id=self.id, skip=tuple(skip)
                    )
                    ok = await pipelines.update_held(
                        session, pipeline_id=self.id, worker=self.w.name, values={"environment_id": env.id}
                    )
                    if not ok:
                        raise LeaseLost(f"pipeline {self.id}: no longer held by {self.w.name}")
                    await session.commit()
                    self.env_id = env.id
                    where = await environments.names(session, env)
                warned = f"; warnings: {'; '.join(env.warnings)}" if env.warnings else ""
                held = where[0] or where[1]
                self.say(f"environment #{env.id}: reserved {held}, reservation #{env.reservation_id}{warned}")
                return env.id
            except Unavailable as exc:
                if not wait:
                    raise
                why = _why_not_now(exc)
                if waiting_said != why:
                    self.say(f"waiting for a {KINDS[self.kind].noun}: {why}")
                    waiting_said = why
                if loop.time() > deadline:
                    raise StageFailed(
                        f"no {self.kind} target came free within {self.w.settings.resource_wait_s:g} s: "
                        f"{exc.message}"
                    ) from exc
                await asyncio.sleep(self.w.settings.resource_retry_s)
            except Invalid as exc:
                raise StageFailed(f"{exc.message} ({exc.field})" if exc.field else exc.message) from exc

    async def _holding_env(self) -> int | None:
        if self.env_id is None:
            return None
        async with self.w.sessions() as session:
            env = await environments.get(session=session, ident=self.env_id, refresh=True)
            return env.id if env.status in ENV_HOLDING else None

    async def _release(self, reason: str) -> None:
        env_id = await self._holding_env()
        if env_id is not None:
            await self.w.provisioner.teardown(env_id, self.say, reason=reason)

    async def _provision(self, stage_id: int, *, deploy: bool, boot: bool) -> dict[str, Any]:
        """Deploy and/or boot on the pipeline's environment, moving to another resource when
        the one in use fails its health check."""
        env_id = await self._holding_env()
        if env_id is None:
            env_id = await self._new_environment([])
            deploy = True
        failed: list[int] = []
        while True:
            env = await self._env_facts(env_id)
            resources = await self._set_resources(stage_id, environment=env_id, **env["names"])
            try:
                if deploy:
                    await self.w.provisioner.deploy(env_id, self.say)
                if boot:
                    await self.w.provisioner.boot(env_id, self.say, self.log.write)
                return resources
            except ProvisionFailed as exc:
                healthy = await self.w.provisioner.check_resource(env_id, self.say)
                await self.w.provisioner.teardown(
                    env_id, self.say, reason=f"provisioning failed: {exc.message}"
                )
                if healthy:
                    raise StageFailed(
                        f"{exc.message} ({exc.resource} passed its health check: the artifacts or the "
                        "boot settings are at fault)"
                    ) from exc
                failed.append(env["resource_id"])
                tried = [*resources.get("failed_resources", []), exc.resource]
                await self._set_resources(stage_id, failed_resources=tried)
                if self.spec.get("target", "auto") != "auto":
                    raise StageFailed(f"{exc.message}; the target was named, so no other is tried") from exc
                if len(failed) >= self.w.settings.max_resources:
                    raise StageFailed(f"{exc.message}; {len(failed)} resources failed in all") from exc
                self.say(f"{exc.resource} failed its health check: provisioning on another resource")
                try:
                    env_id = await self._new_environment(failed, wait=False)
                except (Unavailable, StageFailed) as other:
                    raise StageFailed(f"{exc.message}; no alternative resource: {other.message}") from exc
                deploy = True

    async def _env_facts(self, env_id: int) -> dict[str, Any]:
        async with self.w.sessions() as session:
            env = await environments.get(session=session, ident=env_id)
            host, board = await environments.names(session, env)
            names = {k: v for k, v in (("host", host), ("board", board)) if v}
            if env.domain_name:
                names["domain"] = env.domain_name
            return {"names": names, "resource_id": env.host_id or env.board_id or 0}

    # -- the stages

    async def _build(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        job_id = resources.get("build_job")
        if job_id is not None:
            async with self.w.sessions() as session:
                job = await builds.get(session=session, ident=int(job_id), refresh=True)
                if job.status in (BUILD_FAILED, BUILD_CANCELLED):
                    job_id = None  # a retry builds again
        if job_id is None:
            async with self.w.sessions() as session:
                job = await builds.submit(
                    session=session,
                    actor=self.actor,
                    policy=self.w.build_policy,
                    data=pipelines.build_request(await pipelines.get(session=session, ident=self.id)),
                )
                job_id = job.id
                if not await pipelines.update_held(
                    session, pipeline_id=self.id, worker=self.w.name, values={"build_job_id": job.id}
                ):
                    raise LeaseLost(f"pipeline {self.id}: no longer held")
                await session.commit()
                builds.announce(self.w.bus, job)
            self.say(f"submitted build job #{job_id}")
        self.spec["_build_job"] = int(job_id)
        await self._set_resources(stage_id, build_job=int(job_id))
        try:
            status = await self._follow_build(int(job_id))
        except asyncio.CancelledError:
            if self.cancelled_by is not None:  # a cancel of the pipeline, not this worker stopping
                with contextlib.suppress(Exception):
                    async with self.w.sessions() as session:
                        await builds.cancel(session=session, actor=self.actor, ident=int(job_id))
                        await session.commit()
            raise
        async with self.w.sessions() as session:
            job = await builds.get(session=session, ident=int(job_id), refresh=True)
            server = (await builds.server_names(session)).get(job.build_server_id or 0)
            if job.resolved_commit:
                await pipelines.update_held(
                    session,
                    pipeline_id=self.id,
                    worker=self.w.name,
                    values={"resolved_commit": job.resolved_commit},
                )
            await session.commit()
        out = {"build_job": job.id, "build_server": server, "commit": job.resolved_commit}
        if status != BUILD_SUCCEEDED:
            await self._set_resources(stage_id, **out)
            raise StageFailed(f"build job #{job.id} {status}: {job.failure_reason}")
        return out

    async def _follow_build(self, job_id: int) -> str:
        offset = 0
        while True:
            async for item in build_logs.follow(
                sessions=self.w.sessions, bus=self.w.bus, job_id=job_id, offset=offset
            ):
                if isinstance(item, build_logs.Piece):
                    self.log.write(item.data.decode("utf-8", "replace"))
                    offset = item.offset + len(item.data)
                elif isinstance(item, build_logs.End):
                    return item.status
            # The follower lagged: go on from where we are.

    async def _deploy(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        await self._release("deploying afresh")
        await self._new_environment([])
        return await self._provision(stage_id, deploy=True, boot=False)

    async def _boot(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        env_id = await self._holding_env()
        if env_id is None:
            self.say("the environment was released since the deploy stage: deploying again first")
        return await self._provision(stage_id, deploy=env_id is None, boot=True)

    async def _test(self, stage_id: int, attempt: int, resources: dict[str, Any]) -> dict[str, Any]:
        env_id = await self._holding_env()
        ready = False
        if env_id is not None:
            async with self.w.sessions() as session:
                ready = (await environments.get(session=session, ident=env_id)).status == ENV_READY
        if not ready:
            self.say(
                "no booted environment (it was released when the pipeline stopped): deploying and booting"
            )
            resources = await self._provision(stage_id, deploy=True, boot=True)
            env_id = self.env_id
        assert env_id is not None
        cases = [TestCase.model_validate(c) for c in self.spec.get("tests", [])]
        failed: list[str] = []
        console = await self.w.provisioner.console(env_id)
        async with console:
            for position, case in enumerate(cases):
                self.say(f"test {case.name}: $ {case.command}")
                started = utcnow()
                exit_status: int | None
                try:
                    result = await console.run(case.command, timeout=case.timeout_s)
                    exit_status, output = result.exit_status, result.output
                except DeviceError as exc:
                    exit_status, output = None, exc.message
                    with contextlib.suppress(DeviceError):
                        await console.write(b"\x03\n", timeout=5)  # interrupt it, get a prompt back
                if output:
                    self.log.write(output if output.endswith("\n") else output + "\n")
                status = PASSED if exit_status == 0 else FAILED
                verdict = "PASS" if status == PASSED else "FAIL"
                self.say(f"test {case.name}: {verdict} (exit status {exit_status})")
                if status != PASSED:
                    failed.append(case.name)
                await self._record(stage_id, attempt, position, case, status, exit_status, output, started)
        if failed:
            raise StageFailed(f"{len(failed)} of {len(cases)} test(s) failed: {', '.join(failed)}")
        return {**resources, "tests": len(cases)}

    async def _record(
        self,
        stage_id: int,
        attempt: int,
        position: int,
        case: TestCase,
        status: str,
        exit_status: int | None,
        output: str,
        started: datetime,
    ) -> None:
        async with self.w.sessions() as session:
            session.add(
                TestResult(
                    pipeline_id=self.id,
                    stage_id=stage_id,
                    attempt=attempt,
                    position=position,
                    name=case.name,
                    command=case.command,
                    status=status,
                    exit_status=exit_status,
                    output=output[-65536:],
                    started_at=started,
                    finished_at=utcnow(),
                )
            )
            await session.commit()
        await self._announce()
