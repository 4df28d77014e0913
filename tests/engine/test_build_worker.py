"""The build worker against a real SSH server and real git: runs, failures, priority, cancel,
recovery of expired leases, retries, and logs that join the store and the live stream.

Validates: 3.2, 3.3, 3.4, 3.5, 4.1, 4.2
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from labfleet.db.base import utcnow
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import ServerStatus
from labfleet.schemas.settings import LabSettings
from labfleet.services.artifacts import service as artifacts
from labfleet.services.builds import logs as build_logs
from labfleet.services.builds import queue as build_queue
from labfleet.services.builds import service as builds
from labfleet.services.core import lab_settings
from labfleet.services.inventory import build_servers
from tests.build_rig import Rig


async def read_blob(rig: Rig, digest: str) -> bytes:
    return b"".join([chunk async for chunk in await rig.store.open(digest)])


def processes_in(directory: Path) -> list[int]:
    """Processes whose working directory is in ``directory``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(int(pid))
    return found


async def test_a_build_runs_at_its_commit_with_its_artifacts_and_log(rig: Rig) -> None:
    ident = await rig.submit(
        artifacts=[
            {"path": "out/env.txt", "type": "other"},
            {"path": "out/commit.txt", "type": "other", "name": "commit"},
        ]
    )
    async with rig.engine():
        job = await rig.wait(ident)
    assert (job.status, job.failure_reason, job.attempt) == ("succeeded", None, 1)
    assert job.resolved_commit == rig.commits[-1]
    async with rig.sessions() as session:
        stored = {a.name: a for a in await artifacts.for_build(session=session, build_id=ident)}
    assert set(stored) == {"env.txt", "commit"}
    assert await read_blob(rig, stored["env.txt"].sha256) == b"x86_64 \n"  # native: no prefix
    assert (await read_blob(rig, stored["commit"].sha256)).decode().strip() == rig.commits[-1]
    log = await rig.log(ident)
    assert "built 2" in log
    assert f"labfleet: checked out {rig.commits[-1]}" in log
    # The workspace is gone; the repository mirror stays for the next build.
    assert not list((rig.home / "labfleet-builds").glob("job-*"))
    assert list((rig.home / "labfleet-builds" / "cache").glob("*.git"))


async def test_an_exact_commit_is_built_and_the_toolchain_sets_arch_and_cross_compile(rig: Rig) -> None:
    ident = await rig.submit(
        commit=rig.commits[0],
        branch=None,
        architecture="arm64",
        artifacts=[{"path": "out/env.txt", "type": "other"}],
    )
    async with rig.engine():
        job = await rig.wait(ident)
    assert job.status == "succeeded", job.failure_reason
    assert job.resolved_commit == rig.commits[0]
    assert "built 1" in await rig.log(ident)
    async with rig.sessions() as session:
        (env,) = await artifacts.for_build(session=session, build_id=ident)
    assert await read_blob(rig, env.sha256) == b"arm64 aarch64-linux-gnu-\n"


async def test_a_failing_command_or_a_missing_artifact_fails_the_build_with_the_reason(rig: Rig) -> None:
    failing = await rig.submit(command="echo going down; exit 3")
    missing = await rig.submit(artifacts=[{"path": "out/nothing.img", "type": "firmware"}])
    unknown = await rig.submit(commit="0123456789abcdef", branch=None)
    async with rig.engine():
        jobs = [await rig.wait(i) for i in (failing, missing, unknown)]
    assert [j.status for j in jobs] == ["failed"] * 3
    assert jobs[0].failure_reason == "the build failed with exit status 3: going down"
    assert jobs[1].failure_reason == "artifact out/nothing.img was not produced by the build"
    assert jobs[2].failure_reason is not None
    assert jobs[2].failure_reason.startswith("fetching the repository failed with exit status")
    assert "labfleet: failed: the build failed with exit status 3" in await rig.log(failing)
    async with rig.sessions() as session:
        assert await artifacts.for_build(session=session, build_id=missing) == []


async def test_queued_builds_start_by_priority_then_age(rig: Rig) -> None:
    await rig.set_slots(1)
    order = [(0, "a"), (5, "b"), (-3, "c"), (5, "d"), (1, "e")]
    ids = {name: await rig.submit(priority=p, command=f"echo {name}") for p, name in order}
    async with rig.sessions() as session:
        starts = await builds.estimated_starts(session=session)
    # Every queued job has an estimate, later ones no earlier than those ahead of them.
    expected = ["b", "d", "e", "a", "c"]
    estimates = [starts[ids[n]] for n in expected]
    assert all(e is not None for e in estimates)
    assert estimates == sorted(estimates)  # type: ignore[type-var]
    async with rig.engine():
        jobs = {n: await rig.wait(i) for n, i in ids.items()}
    started = sorted(jobs, key=lambda n: jobs[n].started_at)  # type: ignore[arg-type,return-value]
    assert started == expected
    assert all(j.status == "succeeded" for j in jobs.values())


async def test_cancel_a_queued_build_and_a_running_one_whose_process_group_is_killed(rig: Rig) -> None:
    running = await rig.submit(command="echo started; sleep 300 & sleep 300; echo never")
    async with rig.engine():
        await rig.wait_log(running, "started")
        await rig.set_slots(1)  # first: the one slot is taken, so the next job stays queued
        queued = await rig.submit(command="true", server="local-build")
        job = await rig.job(running)
        workspace = rig.home / (job.workspace or "?")
        assert processes_in(workspace), "the build should be running in its workspace"
        async with rig.sessions() as session:
            await builds.cancel(session=session, actor=SYSTEM, ident=queued)
            cancelled = await builds.cancel(session=session, actor=SYSTEM, ident=running)
            await session.commit()
        builds.announce(rig.bus, cancelled)
        done = await rig.wait(running, timeout=15)
        q = await rig.job(queued)
    assert (q.status, q.started_at, q.failure_reason) == ("cancelled", None, "cancelled by labfleet")
    assert (done.status, done.failure_reason) == ("cancelled", "cancelled by labfleet")
    assert "never" not in await rig.log(running)
    # Both sleeps, the background one included, died with the group; the workspace is removed.
    for _ in range(50):
        if not processes_in(workspace):
            break
        await asyncio.sleep(0.1)
    assert processes_in(workspace) == []
    assert not workspace.exists()


async def test_a_build_whose_worker_stopped_heartbeating_is_recovered_and_run_again(rig: Rig) -> None:
    ident = await rig.submit(artifacts=[{"path": "out/env.txt", "type": "other"}])
    async with rig.sessions() as session:
        # A worker claims it and dies at once: it never heartbeats.
        claimed = await build_queue.claim_for_server(
            session=session,
            server_id=rig.server_id,
            architectures=["x86_64"],
            worker="dead-worker",
            lease_seconds=0.5,
            disk_critical_gb=10,
        )
        await session.commit()
    assert claimed is not None
    assert claimed.id == ident
    await asyncio.sleep(0.6)
    async with rig.engine():
        job = await rig.wait(ident, timeout=30)
    assert (job.status, job.attempt) == ("succeeded", 2)
    log = await rig.log(ident)
    assert "lease expired: worker dead-worker stopped heartbeating; requeued (requeued)" in log
    assert "attempt 2 of build job" in log


async def test_retry_makes_a_new_job_linked_to_the_old_one(rig: Rig) -> None:
    ident = await rig.submit(command="exit 1")
    async with rig.engine():
        old = await rig.wait(ident)
        async with rig.sessions() as session:
            new = await builds.retry(session=session, actor=SYSTEM, policy=rig.policy, ident=ident)
            await session.commit()
        assert (new.retry_of_id, new.attempt, new.status) == (ident, 2, "queued")
        builds.announce(rig.bus, new)
        again = await rig.wait(new.id)
    assert old.status == again.status == "failed"
    assert old.log_size > 0
    assert again.log_size > 0


async def test_following_a_log_joins_what_is_stored_and_what_is_live(rig: Rig) -> None:
    script = "for i in $(seq 1 200); do echo line $i; sleep 0.005; done"
    ident = await rig.submit(command=script)
    pieces: list[bytes] = []
    end = None
    async with rig.engine():
        await rig.wait_log(ident, "line 20")  # start late: part stored, part live
        async with asyncio.timeout(60):
            async for item in build_logs.follow(sessions=rig.sessions, bus=rig.bus, job_id=ident, offset=7):
                if isinstance(item, build_logs.Piece):
                    assert item.offset == 7 + sum(len(p) for p in pieces)
                    pieces.append(item.data)
                else:
                    end = item
    assert end is not None
    assert end.status == "succeeded"
    stored = (await rig.log(ident)).encode()
    assert b"".join(pieces) == stored[7:]
    assert end.size == len(stored)
    assert [f"line {i}" for i in range(1, 201)] == [
        line for line in stored.decode().splitlines() if line.startswith("line ")
    ]


async def test_the_queue_is_recovered_only_after_the_lease(rig: Rig) -> None:
    ident = await rig.submit()
    async with rig.sessions() as session:
        await build_queue.claim_for_server(
            session=session,
            server_id=rig.server_id,
            architectures=["x86_64"],
            worker="slow-worker",
            lease_seconds=60,
            disk_critical_gb=10,
        )
        await session.commit()
        assert await build_queue.recover_expired(session=session, now=utcnow()) == []
    assert (await rig.job(ident)).status == "running"


async def test_periodic_retention_keeps_the_newest_builds_of_a_branch(rig: Rig) -> None:
    spec = [{"path": "out/env.txt", "type": "other"}]
    async with rig.sessions() as session:
        keep_one = LabSettings.model_validate({"artifact_retention": {"keep_last": 1}})
        await lab_settings.replace(session, SYSTEM, keep_one, defaults=LabSettings())
        await session.commit()
    engine = rig.engine()
    async with engine:
        old = await rig.wait(await rig.submit(artifacts=spec))
        new = await rig.wait(await rig.submit(artifacts=spec))
        await engine.run_retention()
    async with rig.sessions() as session:
        assert await artifacts.for_build(session=session, build_id=old.id) == []
        (kept,) = await artifacts.for_build(session=session, build_id=new.id)
    # The same bytes: the blob stays for the artifact that still uses it.
    assert await read_blob(rig, kept.sha256) == b"x86_64 \n"


async def test_a_build_for_a_server_in_maintenance_waits_for_it_to_come_back(rig: Rig) -> None:
    async def set_status(status: ServerStatus) -> None:
        async with rig.sessions() as session:
            await build_servers.set_status(session=session, actor=SYSTEM, ident=rig.server_id, status=status)
            await session.commit()

    await set_status(ServerStatus.maintenance)
    ident = await rig.submit(server="local-build")
    assert (await rig.job(ident)).build_server_id is None
    async with rig.engine():
        await asyncio.sleep(1.0)  # several claim rounds
        assert (await rig.job(ident)).status == "queued"
        await set_status(ServerStatus.online)
        done = await rig.wait(ident)
    assert (done.status, done.build_server_id) == ("succeeded", rig.server_id)
