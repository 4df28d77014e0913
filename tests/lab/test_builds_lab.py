"""Builds end to end on the lab's build server: the lab's repository built for x86_64 natively and
for arm64 with the cross compiler, by the engine, its artifacts stored and checked.

Validates: 3.1, 3.4, 4.1, 4.2
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.api.app import build_policy
from labfleet.config import Settings
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import BuildJob
from labfleet.engine import Engine, EngineSettings
from labfleet.hw.ssh import SshPool
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.builds import BuildJobCreate
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts import service as artifacts
from labfleet.services.builds import service as builds
from labfleet.services.core.events import EventBus
from labfleet.storage import LocalStore
from tests.lab.conftest import VirtualLab, on, register_build_server

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())


@pytest.fixture
async def sessions(fresh_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(fresh_db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def wait_finished(
    sessions: async_sessionmaker[AsyncSession], ids: list[int], timeout: float
) -> list[BuildJob]:
    async with asyncio.timeout(timeout):
        while True:
            async with sessions() as session:
                jobs = [await builds.get(session=session, ident=i, refresh=True) for i in ids]
            if all(j.status not in ("queued", "running") for j in jobs):
                return jobs
            await asyncio.sleep(0.2)


def lab_head(lab: VirtualLab) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(lab.paths.repo), "rev-parse", lab.repo_branch],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@on("postgresql")
async def test_the_engine_builds_the_lab_repository_for_both_architectures(
    lab: VirtualLab, sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with SshPool() as pool, sessions() as session:
        server = await register_build_server(lab, session, pool, BOX)
    policy = build_policy(Settings(data_dir=tmp_path))
    ids = []
    async with sessions() as session:
        for arch in ("x86_64", "arm64"):
            job = await builds.submit(
                session=session,
                actor=SYSTEM,
                policy=policy,
                data=BuildJobCreate.model_validate(
                    {
                        "repository_url": lab.repo_url,
                        "branch": lab.repo_branch,
                        "architecture": arch,
                        "command": "make",
                        "artifacts": [
                            {"path": f"out/{arch}/kernel", "type": "kernel"},
                            {"path": f"out/{arch}/initramfs.cpio.gz", "type": "initramfs"},
                            {"path": f"out/{arch}/labfleet-hello", "type": "other"},
                            {"path": f"out/{arch}/manifest.txt", "type": "other"},
                        ],
                    }
                ),
            )
            assert job.build_server_id == server.id
            ids.append(job.id)
        await session.commit()

    store = LocalStore(tmp_path / "store")
    bus = EventBus()
    engine = Engine(
        sessions=sessions,
        bus=bus,
        store=store,
        secrets=BOX,
        settings=EngineSettings(policy=policy, poll_seconds=0.5),
    )
    async with engine:
        jobs = await wait_finished(sessions, ids, timeout=300)

    main = await asyncio.to_thread(lab_head, lab)
    for job in jobs:
        assert (job.status, job.failure_reason) == ("succeeded", None)
        assert job.resolved_commit == main
        async with sessions() as session:
            stored = {a.name: a for a in await artifacts.for_build(session=session, build_id=job.id)}
            log = (await builds.read_log(session=session, ident=job.id)).data.decode()
        assert set(stored) == {"kernel", "initramfs.cpio.gz", "labfleet-hello", "manifest.txt"}
        assert stored["kernel"].type == "kernel"
        assert stored["initramfs.cpio.gz"].type == "initramfs"
        assert all(a.commit == main and a.architecture == job.architecture for a in stored.values())
        manifest = b"".join(
            [chunk async for chunk in await store.open(stored["manifest.txt"].sha256)]
        ).decode()
        listed = {
            name: (int(size), sha) for name, size, sha in (line.split() for line in manifest.splitlines())
        }
        assert set(listed) == {"kernel", "initramfs.cpio.gz", "labfleet-hello"}
        for name in ("kernel", "initramfs.cpio.gz", "labfleet-hello"):
            assert listed[name] == (stored[name].size, stored[name].sha256)
            blob = b"".join([chunk async for chunk in await store.open(stored[name].sha256)])
            assert hashlib.sha256(blob).hexdigest() == stored[name].sha256
        assert f"labfleet: checked out {main}" in log
        cross = "aarch64-linux-gnu-" if job.architecture == "arm64" else "(native)"
        assert f"CROSS_COMPILE={cross}" in log
        assert "labfleet: succeeded: 4 artifact(s) stored" in log
