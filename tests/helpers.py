"""Helpers shared by test packages."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.context import ForkServerContext, ForkServerProcess
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import AuditEntry


def interruptible() -> None:
    """For ``preexec_fn``: Ctrl-C (SIGINT) interrupts the child as it would from a terminal, even
    when the test's process ignores SIGINT (a background job does, and so may what an earlier
    test in the same worker left behind): an ignored signal is inherited across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A loopback TCP port that nothing listens on now (for a server to come, or to find closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# What the tests' own processes run, imported once into the server they are forked from.
_PRELOAD = [
    "labfleet.cli.main",
    "labfleet.api.app",
    "uvicorn",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.lifespan.on",
    "tests.helpers",
    "tests.db.reservation_worker",
    "tests.services.builds.queue_worker",
]


def processes() -> ForkServerContext:
    """Where tests start processes of their own: ``processes().Process(target=..., args=...)``.

    Each is a fresh OS process, forked from one server process that imported labfleet
    once (never from the test process, with its event loops, threads and connections), so
    it starts in milliseconds where a new interpreter would import everything again.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def run_labfleet(argv: list[str], env: dict[str, str], stdout: str, stderr: str) -> None:
    """``labfleet ARGV`` in this process, as if started with ``env``, printing to the files."""
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    from labfleet.cli.main import app

    app(argv, prog_name="labfleet")


class LabfleetProcess:
    """``labfleet ARGV`` in a process of its own, with what tests use of ``subprocess.Popen``."""

    def __init__(self, argv: list[str], *, env: dict[str, str], stdout: str, stderr: str) -> None:
        self.args = argv
        self._process: ForkServerProcess = processes().Process(
            target=run_labfleet, args=(argv, env, stdout, stderr), daemon=True
        )
        self._process.start()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


@asynccontextmanager
async def example(session: AsyncSession) -> AsyncIterator[None]:
    """One Hypothesis example in a SAVEPOINT that is rolled back, so examples don't see each other."""
    savepoint = await session.begin_nested()
    try:
        yield
    finally:
        await savepoint.rollback()


async def pool_size(session: AsyncSession, model: type[Any]) -> tuple[int, int]:
    """How many ``model`` rows and audit entries there are."""
    members = await session.scalar(select(func.count()).select_from(model))
    audits = await session.scalar(select(func.count()).select_from(AuditEntry))
    return int(members or 0), int(audits or 0)
