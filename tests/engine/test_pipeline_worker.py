"""The pipeline worker on a real database with real builds (the rig's SSH server and git), and a
provisioner whose device steps are scripted: the orchestration itself is what is under test.

- property 24: a deploy that fails on a resource which then fails its health check moves to
  another resource when one can take it; one that passes its check fails the stage; nothing
  stays reserved either way;
- a cancel mid-stage releases everything; a worker that dies mid-stage leaves a pipeline that
  the next worker fails with the reason (deploy, boot, test) or resumes (build).

Validates: 16.4, 17.2, 17.4, 17.5, 11.5
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from labfleet.db.base import utcnow
from labfleet.db.models import Environment, Host, HostLabel, Pipeline, PipelineStage, Reservation, TestResult
from labfleet.engine import Engine, EngineSettings
from labfleet.engine.pipelines import PipelineWorker
from labfleet.hw.fakes import FakeConsole
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.environments import EnvironmentCreate
from labfleet.schemas.pipelines import PipelineCreate
from labfleet.schemas.reservations import ReservationCreate
from labfleet.secretbox import SecretBox
from labfleet.services.environments import service as environments
from labfleet.services.environments.policy import ProvisionPolicy
from labfleet.services.environments.provisioning import Provisioner
from labfleet.services.environments.record import EnvRecord
from labfleet.services.environments.targets import qemu
from labfleet.services.environments.targets.base import Boot, ProvisionFailed
from labfleet.services.inventory import credentials
from labfleet.services.pipelines import service as pipelines
from labfleet.services.pipelines.settings import PipelineSettings
from labfleet.services.reservations import service as reservations
from tests.build_rig import BOX, Rig

USER = Actor(name="ci-bot", role=Role.operator)
_names = itertools.count(1)


class _Console(FakeConsole):
    async def __aenter__(self) -> _Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class Script:
    """How each host behaves: deploy fails on these; these fail their health check; boot takes this long."""

    deploy_fails: set[str] = field(default_factory=set)
    unhealthy: set[str] = field(default_factory=set)
    boot_s: float = 0.0
    deploy_s: float = 0.0
    deploying: asyncio.Event = field(default_factory=asyncio.Event)
    booting: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)
    """Hosts whose deploy or boot was stopped from outside while it ran."""
    deployed: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class ScriptedTarget:
    """A QEMU target whose device steps are scripted; the VM's place on the host is chosen as
    for real (domain, files, console port), and every row is the real provisioner's."""

    def __init__(self, script: Script, record: EnvRecord, secrets: SecretBox) -> None:
        self.script = script
        self.record = record
        self.secrets = secrets

    async def _host_of(self, env_id: int) -> str:
        async with self.record.sessions() as session:
            env = await session.get(Environment, env_id)
            assert env is not None and env.host_id is not None
            host = await session.get(Host, env.host_id)
            assert host is not None
            return host.hostname

    async def deploy(self, env_id: int, say: Any) -> None:
        name = await self._host_of(env_id)
        await qemu.place(self.record, self.secrets, ProvisionPolicy(), env_id)
        self.script.deployed.append(name)
        self.script.deploying.set()
        try:
            await asyncio.sleep(self.script.deploy_s)
        except asyncio.CancelledError:
            self.script.cancelled.append(name)
            raise
        if name in self.script.deploy_fails:
            raise ProvisionFailed(f"deploying to host {name} failed: libvirt said no", resource=name)

    async def boot(self, env_id: int, boot: Boot, say: Any, console_log: Any) -> None:
        self.script.booting.set()
        try:
            await asyncio.sleep(self.script.boot_s)
        except asyncio.CancelledError:
            self.script.cancelled.append(await self._host_of(env_id))
            raise

    async def console(self, env_id: int, log: Any = None) -> Any:
        return _Console().on("^true$", "").on("^false$", "", exit_status=1).on("^echo hi$", "hi\n")

    async def check(self, env_id: int, say: Any) -> bool:
        name = await self._host_of(env_id)
        self.script.checked.append(name)
        return name not in self.script.unhealthy

    async def teardown(self, env_id: int, say: Any) -> None:
        async with self.record.sessions() as session:
            env = await session.get(Environment, env_id, populate_existing=True)
            placed = env is not None and env.domain_name is not None
        if placed:
            self.script.removed.append(await self._host_of(env_id))


def scripted(script: Script, sessions: Any, bus: Any, secrets: SecretBox = BOX) -> Provisioner:
    """The real provisioner (rows, reservations, teardown) with the scripted target for QEMU."""
    record = EnvRecord(sessions, bus)
    return Provisioner(record=record, targets={"qemu": ScriptedTarget(script, record, secrets)})


async def add_host(rig: Rig, name: str, cores: int, labels: dict[str, str]) -> int:
    async with rig.sessions() as session:
        host = Host(
            hostname=name,
            address=f"{name}.lab",
            ssh_user="root",
            ssh_secret=credentials.seal(BOX, password="not used"),
            libvirt_uri=f"qemu+ssh://root@{name}.lab/system",
            cpu_cores=cores,
            memory_mb=8192,
            storage_gb=100.0,
            native_architecture="x86_64",
            machine_types={"x86_64": ["pc"]},
            labels=[HostLabel(key=k, value=v) for k, v in labels.items()],
        )
        session.add(host)
        await session.commit()
        return host.id


def request(rig: Rig, tests: list[dict[str, str]] | None = None, **fields: Any) -> PipelineCreate:
    return PipelineCreate.model_validate(
        {
            "repository_url": rig.repo_url,
            "branch": "main",
            "architecture": "x86_64",
            "environment_type": "qemu",
            "build": {
                "command": "make && cp out/env.txt out/kernel && cp out/commit.txt out/initramfs",
                "artifacts": [
                    {"path": "out/kernel", "type": "kernel"},
                    {"path": "out/initramfs", "type": "initramfs"},
                ],
            },
            "tests": tests or [{"name": "t", "command": "true"}, {"name": "hi", "command": "echo hi"}],
            **fields,
        }
    )


@dataclass
class Lab:
    rig: Rig
    script: Script
    engine: Engine


@pytest.fixture
async def lab(rig: Rig) -> AsyncIterator[Lab]:
    script = Script()
    provisioner = scripted(script, rig.sessions, rig.bus)
    engine = Engine(
        sessions=rig.sessions,
        bus=rig.bus,
        store=rig.store,
        secrets=BOX,
        settings=EngineSettings(
            policy=rig.policy,
            poll_seconds=0.2,
            device_checks=False,
            pipelines=PipelineSettings(
                poll_seconds=0.1, heartbeat_seconds=0.3, lease_seconds=3, resource_retry_s=0.2
            ),
        ),
        provisioner=provisioner,
    )
    async with engine:
        yield Lab(rig, script, engine)


async def submit(rig: Rig, data: PipelineCreate) -> int:
    async with rig.sessions() as session:
        p = await pipelines.submit(session=session, actor=USER, policy=rig.policy, data=data)
        await session.commit()
        return p.id


async def wait(
    rig: Rig, ident: int, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled")
) -> Pipeline:
    async with asyncio.timeout(60):
        while True:
            async with rig.sessions() as session:
                p = await pipelines.get(session=session, ident=ident, refresh=True)
            if p.status in statuses:
                return p
            await asyncio.sleep(0.1)


async def stages(rig: Rig, ident: int) -> dict[str, PipelineStage]:
    async with rig.sessions() as session:
        return {s.name: s for s in await pipelines.stages(session, ident)}


async def active_reservations(rig: Rig) -> list[Reservation]:
    async with rig.sessions() as session:
        return list(await session.scalars(select(Reservation).where(Reservation.released_at.is_(None))))


async def log_of(rig: Rig, ident: int) -> str:
    async with rig.sessions() as session:
        _, _, data, _ = await pipelines.read_log(session=session, ident=ident, offset=0, limit=10**7)
        return data.decode()


async def test_a_pipeline_runs_its_stages_in_order_and_stores_each_test(lab: Lab) -> None:
    rig = lab.rig
    await add_host(rig, f"kvm-{next(_names)}", 4, {})
    ident = await submit(
        rig, request(rig, tests=[{"name": "ok", "command": "true"}, {"name": "no", "command": "false"}])
    )
    p = await wait(rig, ident)
    assert (p.status, p.error) == ("failed", "stage test failed: 1 of 2 test(s) failed: no")
    s = await stages(rig, ident)
    assert [(n, x.status) for n, x in s.items()] == [
        ("build", "succeeded"),
        ("deploy", "succeeded"),
        ("boot", "succeeded"),
        ("test", "failed"),
    ]
    # Strictly in order: each stage started after the one before it ended.
    order = [s[n] for n in ("build", "deploy", "boot", "test")]
    for before, after in itertools.pairwise(order):
        assert before.finished_at is not None and after.started_at is not None
        assert before.finished_at <= after.started_at
        assert (
            before.log_end is not None and after.log_start is not None and before.log_end <= after.log_start
        )
    assert p.resolved_commit == rig.commits[-1]
    async with rig.sessions() as session:
        results = list(await session.scalars(select(TestResult).where(TestResult.pipeline_id == ident)))
    assert [(r.name, r.status, r.exit_status) for r in results] == [("ok", "passed", 0), ("no", "failed", 1)]
    assert await active_reservations(rig) == []
    log = await log_of(rig, ident)
    assert "test no: FAIL (exit status 1)" in log and "built " in log  # the build's own output is in it


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hosts=st.lists(
        st.tuples(st.booleans(), st.booleans()),  # (deploy fails on it, it fails its health check)
        min_size=1,
        max_size=3,
    )
)
async def test_property_24_a_provisioning_failure_moves_to_an_alternative(
    lab: Lab, hosts: list[tuple[bool, bool]]
) -> None:
    """Hosts are tried best first (more cores first); one whose deploy fails and whose health
    check fails is left for the next; a deploy failure on a healthy host fails the stage."""
    rig, script = lab.rig, lab.script
    tag = f"ex{next(_names)}"
    names = []
    for i, (fails, sick) in enumerate(hosts):
        name = f"{tag}-h{i}"
        names.append(name)
        await add_host(rig, name, 16 - i, {"example": tag})  # h0 is chosen first, then h1...
        if fails:
            script.deploy_fails.add(name)
        if sick:
            script.unhealthy.add(name)
    start = len(script.deployed)
    ident = await submit(rig, request(rig, requirements={"labels": {"example": tag}}))
    p = await wait(rig, ident)
    tried = script.deployed[start:]
    # Oracle: walk the hosts in order of preference.
    expected_tried, outcome = [], "succeeded"
    for name, (fails, sick) in zip(names, hosts, strict=True):
        expected_tried.append(name)
        if not fails:
            break
        if not sick:
            outcome = "failed"  # the artifacts are to blame: no other host is tried
            break
    else:
        outcome = "failed"  # every host failed: no alternative left
    assert tried == expected_tried, (hosts, tried)
    assert p.status == outcome, (hosts, p.error)
    deploy = (await stages(rig, ident))["deploy"]
    failed_over = [n for n, (fails, sick) in zip(names, hosts, strict=True) if n in tried and fails and sick]
    assert deploy.resources.get("failed_resources", []) == failed_over
    if outcome == "failed":
        assert deploy.status == "failed"
        assert deploy.error is not None
    # Each failed resource got its health check; nothing is left reserved.
    assert [n for n in script.checked if n.startswith(tag)] == [n for n in tried if n in script.deploy_fails]
    assert await active_reservations(rig) == []


async def test_cancel_during_boot_releases_everything(lab: Lab) -> None:
    rig, script = lab.rig, lab.script
    await add_host(rig, f"kvm-{next(_names)}", 4, {})
    script.boot_s = 30
    ident = await submit(rig, request(rig))
    async with asyncio.timeout(30):
        while (await stages(rig, ident))["boot"].status != "running":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert len(await active_reservations(rig)) == 1
    async with rig.sessions() as session:
        await pipelines.cancel(session=session, actor=USER, ident=ident)
        await session.commit()
    p = await wait(rig, ident)
    assert p.status == "cancelled"
    s = await stages(rig, ident)
    assert [x.status for x in s.values()] == ["succeeded", "succeeded", "cancelled", "skipped"]
    assert s["boot"].error == "cancelled by ci-bot"
    assert await active_reservations(rig) == []
    assert script.removed  # the VM was torn down


def die(engine: Engine, ident: int) -> None:
    """The worker holding the pipeline stops dead: no more heartbeats, no cleanup, no handover."""
    worker = engine.pipelines

    async def nothing() -> None:
        return None

    worker.stop = nothing  # type: ignore[method-assign]
    worker.settings = PipelineSettings(max_pipelines=0)  # and it claims nothing any more
    worker._runs[ident].cancel()


async def take_over(lab: Lab) -> PipelineWorker:
    return PipelineWorker(
        sessions=lab.rig.sessions,
        bus=lab.rig.bus,
        provisioner=lab.engine.provisioner,
        build_policy=lab.rig.policy,
        settings=PipelineSettings(poll_seconds=0.1, heartbeat_seconds=0.3, lease_seconds=3),
        name="worker-b",
    )


async def test_a_pipeline_whose_worker_died_mid_boot_fails_that_stage_with_the_reason_and_holds_nothing(
    lab: Lab,
) -> None:
    rig, script = lab.rig, lab.script
    await add_host(rig, f"kvm-{next(_names)}", 4, {})
    script.boot_s = 60
    ident = await submit(rig, request(rig))
    async with asyncio.timeout(30):
        while (await stages(rig, ident))["boot"].status != "running":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    die(lab.engine, ident)
    assert len(await active_reservations(rig)) == 1  # held until someone takes over
    other = await take_over(lab)
    task = asyncio.create_task(other.run())
    try:
        p = await wait(rig, ident)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its shutdown ends with the test
    assert p.status == "failed"
    s = await stages(rig, ident)
    assert [x.status for x in s.values()] == ["succeeded", "succeeded", "failed", "skipped"]
    assert s["boot"].error is not None and s["boot"].error.startswith("interrupted: the labfleet process")
    assert await active_reservations(rig) == []
    assert "taken over by worker-b" in await log_of(rig, ident)


async def test_a_pipeline_whose_worker_died_mid_build_follows_the_same_build_to_the_end(lab: Lab) -> None:
    rig = lab.rig
    await add_host(rig, f"kvm-{next(_names)}", 4, {})
    data = request(rig)
    data.build.command = "sleep 3; " + (data.build.command or "")
    ident = await submit(rig, data)
    async with asyncio.timeout(30):
        while "build_job" not in (await stages(rig, ident))["build"].resources:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    build_job = (await stages(rig, ident))["build"].resources["build_job"]
    die(lab.engine, ident)
    other = await take_over(lab)
    task = asyncio.create_task(other.run())
    try:
        p = await wait(rig, ident)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)  # its shutdown ends with the test
    assert p.status == "succeeded", p.error
    s = await stages(rig, ident)
    assert s["build"].resources["build_job"] == build_job  # the same build, not a second one
    assert s["build"].attempt == 2
    assert p.build_job_id == build_job
    assert "following build job" in await log_of(rig, ident)
    assert await active_reservations(rig) == []


async def test_pipelines_waiting_for_the_same_target_get_it_oldest_first(lab: Lab) -> None:
    rig, script = lab.rig, lab.script
    tag = f"fifo{next(_names)}"
    host = await add_host(rig, f"{tag}-kvm", 1, {"example": tag})  # room for one VM at a time
    script.boot_s = 0.5
    async with rig.sessions() as session:  # someone else holds it while all four come to wait
        blocker = await reservations.reserve(
            session=session,
            actor=Actor(name="someone", role=Role.operator),
            data=ReservationCreate(host_id=host, vcpus=1, purpose="in the way"),
        )
        await session.commit()
    ids = [await submit(rig, request(rig, requirements={"labels": {"example": tag}})) for _ in range(4)]
    async with asyncio.timeout(60):
        while {(await stages(rig, i))["deploy"].status for i in ids} != {"running"}:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    async with rig.sessions() as session:
        await reservations.release_for(session=session, ident=blocker.id, reason="done")
        await session.commit()
    for ident in ids:
        assert (await wait(rig, ident)).status == "succeeded"
    async with rig.sessions() as session:
        served = list(
            await session.scalars(
                select(Environment.pipeline_id)
                .where(Environment.pipeline_id.in_(ids))
                .order_by(Environment.id)
            )
        )
    assert served == ids
    assert await active_reservations(rig) == []


async def wait_env(rig: Rig, ident: int, statuses: tuple[str, ...]) -> Environment:
    async with asyncio.timeout(30):
        while True:
            async with rig.sessions() as session:
                env = await session.get(Environment, ident, populate_existing=True)
                assert env is not None
            if env.status in statuses:
                return env
            await asyncio.sleep(0.1)


async def test_a_standalone_environment_is_provisioned_then_released_when_it_expires(lab: Lab) -> None:
    rig, script = lab.rig, lab.script
    tag = f"env{next(_names)}"
    good = f"{tag}-good"
    await add_host(rig, good, 4, {"example": tag})
    pipeline = await submit(rig, request(rig, requirements={"labels": {"example": tag}}))
    build_id = (await wait(rig, pipeline)).build_job_id
    data = EnvironmentCreate.model_validate(
        {
            "kind": "qemu",
            "architecture": "x86_64",
            "artifacts": {"build_id": build_id},
            "requirements": {"labels": {"example": tag}},
        }
    )
    async with rig.sessions() as session:
        env = await environments.create(session=session, actor=USER, data=data)
        await session.commit()
        environments.announce(rig.bus, env)
    ready = await wait_env(rig, env.id, ("ready", "failed"))
    assert ready.status == "ready", ready.error
    assert [s["step"] for s in ready.detail["steps"]] == ["boot"]  # the scripted deploy records none
    assert len(await active_reservations(rig)) == 1
    # Past its expiry: the sweep asks for its release, the worker tears it down.
    async with rig.sessions() as session:
        row = await session.get(Environment, env.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
    swept = await lab.engine.environments.expire()
    assert swept in ([env.id], [])  # [] when the engine's own periodic sweep got there first
    released = await wait_env(rig, env.id, ("released",))
    assert released.release_reason == "expired"
    assert await active_reservations(rig) == []

    # One whose deploy fails: failed, with the reason, and nothing held.
    script.deploy_fails.add(good)
    async with rig.sessions() as session:
        env = await environments.create(session=session, actor=USER, data=data)
        await session.commit()
        environments.announce(rig.bus, env)
    failed = await wait_env(rig, env.id, ("failed",))
    assert failed.error is not None and "libvirt said no" in failed.error
    assert failed.released_at is not None
    assert await active_reservations(rig) == []
