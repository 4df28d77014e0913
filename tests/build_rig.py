"""A build rig for the engine and health tests: a real database, a real SSH server in this
process running real shell commands in a home directory of its own, a local git repository,
an artifact store, and the engine.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import BuildJob, BuildServer, Toolchain
from labfleet.engine import Engine, EngineSettings
from labfleet.hw.ssh_server import LocalSshServer, new_private_key, public_key_of
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.builds import BuildJobCreate
from labfleet.secretbox import SecretBox
from labfleet.services.builds import service as builds
from labfleet.services.builds.service import BuildPolicy
from labfleet.services.core.events import EventBus
from labfleet.storage import LocalStore

KEY = Fernet.generate_key()
BOX = SecretBox(KEY)
FINAL = ("succeeded", "failed", "cancelled")
_ADDRESSES = itertools.count()

MAKEFILE = """\
all:
\tmkdir -p out
\techo "$(ARCH) $(CROSS_COMPILE)" > out/env.txt
\tgit rev-parse HEAD > out/commit.txt
\t@echo "built $$(cat VERSION)"
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def make_repo(path: Path) -> list[str]:
    """A repository with two commits on ``main``; returns their hashes, oldest first."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "lab@example.org")
    git(path, "config", "user.name", "Lab")
    (path / "Makefile").write_text(MAKEFILE)
    commits = []
    for version in ("1", "2"):
        (path / "VERSION").write_text(version + "\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"version {version}")
        commits.append(git(path, "rev-parse", "HEAD"))
    return commits


@dataclass
class Rig:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    store: LocalStore
    ssh: LocalSshServer
    home: Path
    repo_url: str
    commits: list[str]
    server_id: int
    policy: BuildPolicy
    tmp: Path

    async def submit(self, **fields: Any) -> int:
        data = {
            "repository_url": self.repo_url,
            "branch": "main",
            "architecture": "x86_64",
            "command": "make",
            **fields,
        }
        async with self.sessions() as session:
            job = await builds.submit(
                session=session, actor=SYSTEM, policy=self.policy, data=BuildJobCreate.model_validate(data)
            )
            await session.commit()
        builds.announce(self.bus, job)
        return job.id

    def engine(self, **settings: Any) -> Engine:
        return Engine(
            sessions=self.sessions,
            bus=self.bus,
            store=self.store,
            secrets=BOX,
            settings=EngineSettings(policy=self.policy, poll_seconds=0.2, **settings),
        )

    async def job(self, ident: int) -> BuildJob:
        async with self.sessions() as session:
            return await builds.get(session=session, ident=ident, refresh=True)

    async def wait(self, ident: int, statuses: tuple[str, ...] = FINAL, timeout: float = 60) -> BuildJob:
        async with asyncio.timeout(timeout):
            while (job := await self.job(ident)).status not in statuses:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.05)
        return job

    async def wait_log(self, ident: int, text: str, timeout: float = 30) -> str:
        async with asyncio.timeout(timeout):
            while text not in (log := await self.log(ident)):  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.05)
        return log

    async def log(self, ident: int) -> str:
        async with self.sessions() as session:
            return (await builds.read_log(session=session, ident=ident)).data.decode()

    async def set_slots(self, slots: int) -> None:
        async with self.sessions() as session:
            server = await session.get(BuildServer, self.server_id)
            assert server is not None
            server.max_concurrent_builds = slots
            await session.commit()


async def add_server(
    sessions: async_sessionmaker[AsyncSession],
    ssh: LocalSshServer,
    key: str,
    *,
    name: str,
    slots: int,
    address: str | None = None,
) -> int:
    """A build server row for ``ssh``, at ``address`` (where it listens) when given.

    Otherwise unique per server (the column is): each other server gets a loopback
    address of its own, out of the way of 127.0.0.0/24, where tests place their own.
    """
    if address is None:
        n = next(_ADDRESSES)
        address = "127.0.0.1" if name == "local-build" else f"127.0.{n // 250 + 1}.{n % 250 + 2}"
    async with sessions() as session:
        server = BuildServer(
            hostname=name,
            address=address,
            ssh_port=ssh.port,
            ssh_user=getpass.getuser(),
            ssh_secret=BOX.seal({"private_key": key}),
            ssh_host_key=ssh.host_key,
            max_concurrent_builds=slots,
            cpu_cores=4,
            disk_free_gb=100.0,
            load_1m=0.1,
            labels=[],
            toolchains=[
                Toolchain(
                    compiler="gcc",
                    target_triplet="x86_64-linux-gnu",
                    architecture="x86_64",
                    version="12",
                    path="/usr/bin/gcc",
                ),
                Toolchain(
                    compiler="gcc",
                    target_triplet="aarch64-linux-gnu",
                    architecture="arm64",
                    version="12",
                    path="/usr/bin/aarch64-linux-gnu-gcc",
                ),
            ],
        )
        session.add(server)
        await session.commit()
        return server.id


@pytest.fixture
async def rig(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    key = new_private_key()
    home = tmp_path / "home"
    home.mkdir()
    commits = await asyncio.to_thread(make_repo, tmp_path / "repo")
    engine = create_engine(fresh_db_url)
    sessions = session_factory(engine)
    bus = EventBus()
    try:
        async with LocalSshServer(authorized_keys=[public_key_of(private_key=key)], home=str(home)) as ssh:
            server_id = await add_server(sessions, ssh, key, name="local-build", slots=2)
            yield Rig(
                sessions=sessions,
                bus=bus,
                store=LocalStore(tmp_path / "store"),
                ssh=ssh,
                home=home,
                repo_url=f"file://{tmp_path / 'repo'}",
                commits=commits,
                server_id=server_id,
                policy=BuildPolicy(lease_seconds=5.0, heartbeat_seconds=0.5),
                tmp=tmp_path,
            )
    finally:
        await bus.close()
        await engine.dispose()
