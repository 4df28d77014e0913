"""Durable work keeps its lease, and stops when it loses it, whatever the worker.

- a worker whose lease is taken over stops its work and writes nothing more;
- a database that goes away for less than the lease does not cost a worker its lease: its
  renewals are retried, so no other worker takes the work over meanwhile;
- a database away for longer than the lease costs it: the work is stopped, since another
  worker may have taken it over by then.

The database outage is the session factory refusing to connect, as SQLAlchemy does when the
server is down; ``test_environment_processes.py`` takes a real PostgreSQL away.

Validates: 16.4, 17.4
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.models import Artifact, Environment, Pipeline, Reservation
from labfleet.engine import Engine, EngineSettings
from labfleet.engine.environments import EnvironmentWorker
from labfleet.engine.pipelines import PipelineWorker
from labfleet.schemas.environments import EnvironmentCreate
from labfleet.services.environments import service as environments
from labfleet.services.environments.provisioning import Provisioner
from labfleet.services.pipelines import service as pipelines
from labfleet.services.pipelines.settings import PipelineSettings
from tests.build_rig import BOX, Rig
from tests.db.build_rows import build_job
from tests.engine.test_pipeline_worker import USER, Script, add_host, request, scripted, submit

_names = itertools.count(1)


class Outage:
    """A session factory whose database can be taken away: while ``down``, every new session
    fails to connect, as SQLAlchemy's does when the server does not answer."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self.down = False
        self.refused = 0

    def __call__(self) -> Any:
        if self.down:
            self.refused += 1
            raise OperationalError("connect", None, ConnectionRefusedError("the database is away"))
        return self._sessions()

    async def for_(self, seconds: float) -> None:
        self.down = True
        try:
            await asyncio.sleep(seconds)
        finally:
            self.down = False


@dataclass
class Env:
    rig: Rig
    script: Script
    provisioner: Provisioner


@pytest.fixture
def env(rig: Rig) -> Env:
    script = Script()
    return Env(rig, script, provisioner(rig, script, rig.sessions))


def provisioner(rig: Rig, script: Script, sessions: Any) -> Provisioner:
    return scripted(script, sessions, rig.bus)


async def standalone(rig: Rig, tag: str) -> int:
    """A pending standalone environment on a host of its own, from stored artifacts."""
    await add_host(rig, f"{tag}-kvm", 4, {"example": tag})
    async with rig.sessions() as session:
        job = await build_job(session, architecture="x86_64", repository_url=rig.repo_url)
        for kind in ("kernel", "initramfs"):
            session.add(
                Artifact(
                    sha256=f"{job.id:064x}",
                    size=1,
                    name=kind,
                    type=kind,
                    build_job_id=job.id,
                    repository_url=rig.repo_url,
                    branch="main",
                    architecture="x86_64",
                )
            )
        await session.flush()
        data = EnvironmentCreate.model_validate(
            {
                "kind": "qemu",
                "architecture": "x86_64",
                "artifacts": {"build_id": job.id},
                "requirements": {"labels": {"example": tag}},
            }
        )
        row = await environments.create(session=session, actor=USER, data=data)
        await session.commit()
        return row.id


async def row(rig: Rig, model: Any, ident: int) -> Any:
    async with rig.sessions() as session:
        found = await session.get(model, ident, populate_existing=True)
        assert found is not None
        return found


async def held(rig: Rig) -> list[Reservation]:
    async with rig.sessions() as session:
        return list(await session.scalars(select(Reservation).where(Reservation.released_at.is_(None))))


async def until(what: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not await what():  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Workers started by a test, stopped (and awaited) at its end."""
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def worker(env: Env, sessions: Any, name: str, lease: float = 3.0, **extra: Any) -> EnvironmentWorker:
    return EnvironmentWorker(
        sessions=sessions,
        bus=env.rig.bus,
        provisioner=extra.pop("provisioner", env.provisioner),
        lease_seconds=lease,
        poll_seconds=0.1,
        name=name,
    )


async def test_an_environment_worker_that_lost_its_lease_stops_provisioning(
    env: Env, running: list[asyncio.Task[None]]
) -> None:
    rig, script = env.rig, env.script
    script.deploy_s = 30
    ident = await standalone(rig, f"lost{next(_names)}")
    running.append(asyncio.create_task(worker(env, rig.sessions, "worker-a", lease=2.0).run()))
    await asyncio.wait_for(script.deploying.wait(), 20)
    async with rig.sessions() as session:  # another worker took it over (its lease had run out)
        await session.execute(
            update(Environment).where(Environment.id == ident).values(lease_owner="worker-b")
        )
        await session.commit()

    async def stopped() -> bool:
        return bool(script.cancelled)

    await until(stopped, timeout=5)
    await asyncio.sleep(0.5)
    after = await row(rig, Environment, ident)
    # Nothing more from worker-a: not ready, not failed, not torn down; the new holder's now.
    assert (after.status, after.lease_owner, after.error) == ("provisioning", "worker-b", None)
    assert script.removed == []
    assert len(await held(rig)) == 1


async def test_an_environment_worker_keeps_its_lease_through_a_brief_database_outage(
    env: Env, running: list[asyncio.Task[None]]
) -> None:
    """Worker a loses its database for less than its lease in the middle of a deploy; worker b,
    which can reach the database, waits for any lease that runs out. None does."""
    rig, script = env.rig, env.script
    script.deploy_s = 5
    tag = f"blip{next(_names)}"
    ident = await standalone(rig, tag)
    outage = Outage(rig.sessions)
    a = worker(env, outage, "worker-a", provisioner=provisioner(rig, script, outage))
    running.append(asyncio.create_task(a.run()))
    await asyncio.wait_for(script.deploying.wait(), 20)
    running.append(asyncio.create_task(worker(env, rig.sessions, "worker-b").run()))
    await outage.for_(1.2)
    assert outage.refused > 0  # a renewal met the outage

    async def settled() -> bool:
        return (await row(rig, Environment, ident)).status in ("ready", "failed", "released")

    await until(settled)
    done = await row(rig, Environment, ident)
    assert (done.status, done.error) == ("ready", None)
    assert script.deployed == [f"{tag}-kvm"]  # deployed once, by a
    assert script.removed == []  # and never torn down by b as "interrupted"
    assert len(await held(rig)) == 1


async def test_a_database_away_for_longer_than_the_lease_stops_the_work(
    env: Env, running: list[asyncio.Task[None]]
) -> None:
    rig, script = env.rig, env.script
    script.deploy_s = 30
    ident = await standalone(rig, f"gone{next(_names)}")
    outage = Outage(rig.sessions)
    a = worker(env, outage, "worker-a", lease=1.5, provisioner=provisioner(rig, script, outage))
    running.append(asyncio.create_task(a.run()))
    await asyncio.wait_for(script.deploying.wait(), 20)
    outage.down = True

    async def stopped() -> bool:
        return bool(script.cancelled)

    try:
        await until(stopped, timeout=5)  # by the end of its lease, it stopped deploying
    finally:
        outage.down = False
    after = await row(rig, Environment, ident)
    assert after.status == "provisioning"  # left for the next worker, which fails it with the reason


async def test_a_pipeline_keeps_its_lease_through_a_brief_database_outage(
    rig: Rig, running: list[asyncio.Task[None]]
) -> None:
    """The process running the pipeline loses its database mid-boot for less than the lease;
    another process's worker waits for any lease that runs out. The pipeline is not taken over."""
    script = Script(boot_s=5)
    outage = Outage(rig.sessions)
    tag = f"pipe{next(_names)}"
    await add_host(rig, f"{tag}-kvm", 4, {"example": tag})
    settings = PipelineSettings(
        poll_seconds=0.1, heartbeat_seconds=0.75, lease_seconds=3, resource_retry_s=0.2
    )
    engine = Engine(
        sessions=outage,  # type: ignore[arg-type]
        bus=rig.bus,
        store=rig.store,
        secrets=BOX,
        settings=EngineSettings(policy=rig.policy, poll_seconds=0.2, device_checks=False, pipelines=settings),
        provisioner=provisioner(rig, script, outage),
    )
    async with engine:
        ident = await submit(rig, request(rig, requirements={"labels": {"example": tag}}))
        await asyncio.wait_for(script.booting.wait(), 60)
        other = PipelineWorker(
            sessions=rig.sessions,
            bus=rig.bus,
            provisioner=provisioner(rig, script, rig.sessions),
            build_policy=rig.policy,
            settings=settings,
            name="worker-b",
        )
        running.append(asyncio.create_task(other.run()))
        before = (await row(rig, Pipeline, ident)).lease_expires_at
        await outage.for_(1.2)
        assert outage.refused > 0

        async def renewed() -> bool:
            p = await row(rig, Pipeline, ident)
            return bool(p.lease_expires_at > before)  # a renewal after the outage

        await until(renewed, timeout=5)

        async def ended() -> bool:
            return (await row(rig, Pipeline, ident)).status in ("succeeded", "failed", "cancelled")

        await until(ended, timeout=60)
    p = await row(rig, Pipeline, ident)
    assert (p.status, p.error) == ("succeeded", None)
    async with rig.sessions() as session:
        _, _, data, _ = await pipelines.read_log(session=session, ident=ident, offset=0, limit=10**7)
    assert "taken over by" not in data.decode()
    assert script.cancelled == []
