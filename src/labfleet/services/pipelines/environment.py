"""A pipeline's environment: made when its deploy stage needs one, waited for when no host or
board is free, provisioned (moving to another resource when one is to blame), released
when the pipeline ends (R17.2, R11.5).

Pipelines of one process asking for the same target are served oldest first: a younger
one tries only when no older one is waiting for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models.environments import ENV_HOLDING, ENV_READY
from labfleet.errors import Invalid, LabfleetError, Unavailable
from labfleet.schemas.auth import Actor
from labfleet.schemas.environments import EnvironmentCreate
from labfleet.services.environments import failover
from labfleet.services.environments import service as environments
from labfleet.services.environments.kinds import KINDS
from labfleet.services.environments.provisioning import Provisioner
from labfleet.services.environments.targets.base import Say
from labfleet.services.pipelines import progress
from labfleet.services.pipelines import service as pipelines
from labfleet.services.pipelines.settings import PipelineSettings


class StageFailed(LabfleetError):
    """The stage failed, for the reason given; nothing it held is left held."""


def why_not_now(exc: Unavailable) -> str:
    """The refusal with what each alternative lacks, so a wait says what it waits for."""
    lacks = []
    for alt in exc.alternatives[:3]:
        reasons = "; ".join(str(r.get("message", r)) for r in alt.get("lacks", []) if isinstance(r, dict))
        lacks.append(f"{alt.get('name')}: {reasons or alt.get('message') or 'busy'}")
    return exc.message + (f" ({' | '.join(lacks)})" if lacks else "")


@dataclass
class _Wait:
    """One wait for a target: until when, and what was last said about it (said once)."""

    deadline: float
    said: str | None = None


@dataclass
class PipelineEnvironment:
    sessions: async_sessionmaker[AsyncSession]
    provisioner: Provisioner
    settings: PipelineSettings
    pipeline_id: int
    worker: str
    actor: Actor
    spec: dict[str, Any]
    kind: str
    architecture: str
    say: Say
    queue_for: Callable[[str], set[int]]
    """The pipelines of this process waiting for exactly this request."""
    env_id: int | None = None

    async def holding(self) -> int | None:
        """The environment, if it still holds its target."""
        if self.env_id is None:
            return None
        async with self.sessions() as session:
            env = await environments.get(session=session, ident=self.env_id, refresh=True)
            return env.id if env.status in ENV_HOLDING else None

    async def ready(self) -> int | None:
        """The environment, if it is booted."""
        env_id = await self.holding()
        if env_id is None:
            return None
        async with self.sessions() as session:
            return (
                env_id
                if (await environments.get(session=session, ident=env_id)).status == ENV_READY
                else None
            )

    async def release(self, reason: str) -> None:
        env_id = await self.holding()
        if env_id is not None:
            await self.provisioner.teardown(env_id, self.say, reason=reason)

    # -- making one

    async def _request(self) -> EnvironmentCreate:
        async with self.sessions() as session:
            build = (await pipelines.get(session=session, ident=self.pipeline_id, refresh=True)).build_job_id
        if build is None:
            raise StageFailed("the build stage has no build job: retry from the build stage")
        return EnvironmentCreate.model_validate(
            {
                "kind": self.kind,
                "architecture": self.architecture,
                "artifacts": {"build_id": build},
                "target": self.spec.get("target", "auto"),
                "requirements": self.spec.get("requirements") or {},
                "boot": self.spec.get("boot") or {},
                "purpose": f"pipeline #{self.pipeline_id}",
                "expires_in_s": self.settings.environment_hold_s,
            }
        )

    async def new(self, skip: list[int], *, wait: bool = True) -> int:
        """A new environment for the pipeline, on a resource other than ``skip``; with ``wait``,
        waited for (in turn) until one comes free or ``resource_wait_s`` passes."""
        data = await self._request()
        waiting = _Wait(deadline=asyncio.get_running_loop().time() + self.settings.resource_wait_s)
        turn = self.queue_for(
            data.model_dump_json(include={"kind", "architecture", "target", "requirements"})
        )
        turn.add(self.pipeline_id)
        try:
            while True:
                if wait and min(turn) < self.pipeline_id:
                    await self._behind(min(turn), waiting)
                    continue
                env_id = await self._reserve(data, skip, wait=wait, waiting=waiting)
                if env_id is not None:
                    return env_id
        finally:
            turn.discard(self.pipeline_id)

    async def _behind(self, first: int, waiting: _Wait) -> None:
        if waiting.said is None:
            waiting.said = f"behind pipeline #{first}"
            self.say(f"waiting behind older pipelines asking for the same target (#{first} first)")
        await asyncio.sleep(self.settings.resource_retry_s / 3)
        if asyncio.get_running_loop().time() > waiting.deadline:
            raise StageFailed(f"no {self.kind} target came free within {self.settings.resource_wait_s:g} s")

    async def _reserve(
        self, data: EnvironmentCreate, skip: list[int], *, wait: bool, waiting: _Wait
    ) -> int | None:
        """The environment, or ``None`` when nothing is free now (said once per reason)."""
        try:
            async with self.sessions() as session:
                env = await environments.create(
                    session=session,
                    actor=self.actor,
                    data=data,
                    pipeline_id=self.pipeline_id,
                    skip=tuple(skip),
                )
                await progress.set_held(session, self.pipeline_id, self.worker, environment_id=env.id)
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
            why = why_not_now(exc)
            if waiting.said != why:
                waiting.said = why
                self.say(f"waiting for a {KINDS[self.kind].noun}: {why}")
            if asyncio.get_running_loop().time() > waiting.deadline:
                within = f"within {self.settings.resource_wait_s:g} s"
                raise StageFailed(f"no {self.kind} target came free {within}: {exc.message}") from exc
            await asyncio.sleep(self.settings.resource_retry_s)
            return None
        except Invalid as exc:
            raise StageFailed(f"{exc.message} ({exc.field})" if exc.field else exc.message) from exc

    # -- provisioning it

    async def provision(self, stage_id: int, *, deploy: bool, boot: bool, console_log: Say) -> dict[str, Any]:
        """Deploy and/or boot, on a new environment when none is held; what the stage used."""
        env_id = await self.holding()
        if env_id is None:
            env_id = await self.new([])
            deploy = True
        placement = _StagePlacement(self, stage_id)
        try:
            await failover.provision(
                self.provisioner,
                env_id,
                placement,
                deploy=deploy,
                boot=boot,
                may_move=self.spec.get("target", "auto") == "auto",
                max_resources=self.settings.max_resources,
                say=self.say,
                console_log=console_log,
            )
        except failover.GaveUp as exc:
            raise StageFailed(exc.message) from exc
        return placement.resources


class _StagePlacement:
    """Where the stage's environment is, kept on the stage's row as it moves."""

    def __init__(self, env: PipelineEnvironment, stage_id: int) -> None:
        self.env = env
        self.stage_id = stage_id
        self.resources: dict[str, Any] = {}

    async def using(self, env_id: int) -> None:
        async with self.env.sessions() as session:
            row = await environments.get(session=session, ident=env_id)
            host, board = await environments.names(session, row)
            names = {k: v for k, v in (("host", host), ("board", board), ("domain", row.domain_name)) if v}
        self.resources = await progress.add_resources(
            self.env.sessions, self.stage_id, environment=env_id, **names
        )

    async def failed(self, resource: str) -> None:
        tried = [*self.resources.get("failed_resources", []), resource]
        self.resources = await progress.add_resources(
            self.env.sessions, self.stage_id, failed_resources=tried
        )

    async def another(self, skip: list[int]) -> int:
        return await self.env.new(skip, wait=False)
