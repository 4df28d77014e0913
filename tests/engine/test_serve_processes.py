"""Real ``labfleet serve`` processes running builds: one killed with SIGKILL mid-build and started
again, and two sharing one queue. A job is recovered, never stuck, and never runs twice.

Validates: 3.3, 3.4 (durable queue: DESIGN.md, "State and work")
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from types import TracebackType

import httpx

from tests.engine.conftest import KEY, Rig
from tests.engine.test_build_worker import processes_in


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``labfleet serve`` on the rig's database, with short leases so recovery is quick."""

    def __init__(self, rig: Rig, name: str, db_url: str) -> None:
        self.port = free_port()
        data = rig.tmp / f"data-{name}"
        data.mkdir(exist_ok=True)
        key_file = rig.tmp / "secret.key"
        key_file.write_bytes(KEY)
        self.env = {
            **os.environ,
            "LABFLEET_DATA_DIR": str(data),
            "LABFLEET_DATABASE_URL": db_url,
            "LABFLEET_SECRET_KEY_FILE": str(key_file),
            "LABFLEET_ARTIFACT_DIR": str(rig.tmp / "artifacts"),
            "LABFLEET_DEVICE_CHECKS": "false",
            "LABFLEET_BUILD_LEASE_SECONDS": "2",
            "LABFLEET_BUILD_HEARTBEAT_SECONDS": "0.5",
        }
        self.log = data / "serve.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Serve:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "labfleet.cli.main",
            "serve",
            "--port",
            str(self.port),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        async with httpx.AsyncClient() as client, asyncio.timeout(30):
            while True:
                try:
                    await client.get(f"http://127.0.0.1:{self.port}/api/v1/openapi.json", timeout=1)
                    return self
                except httpx.TransportError:
                    assert self.proc.returncode is None, self.log.read_text()
                    await asyncio.sleep(0.1)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            async with asyncio.timeout(20):
                await self.proc.wait()


async def test_kill_9_mid_build_then_restart_recovers_the_build(rig: Rig, fresh_db_url: str) -> None:
    # The first run sleeps (and is killed with its process); the run after recovery does not.
    command = "echo started; if mkdir ../../first-run 2>/dev/null; then sleep 120; fi; echo all-done"
    ident = await rig.submit(command=command, artifacts=[{"path": "Makefile", "type": "other"}])
    async with Serve(rig, "a", fresh_db_url) as first:
        await rig.wait_log(ident, "started")
        job = await rig.job(ident)
        workspace = rig.home / (job.workspace or "?")
        assert processes_in(workspace)
        await first.kill()
    # Nobody holds it now, and nothing changed it: the row still says running.
    assert (await rig.job(ident)).status == "running"

    async with Serve(rig, "b", fresh_db_url):
        done = await rig.wait(ident, timeout=60)
    assert (done.status, done.attempt) == ("succeeded", 2), done.failure_reason
    log = await rig.log(ident)
    assert "stopped heartbeating; requeued" in log
    assert "stopping what the previous attempt left running" in log
    assert log.count("all-done") == 1
    # The orphaned first attempt was killed and its workspace removed by the second.
    assert processes_in(workspace) == []
    assert not workspace.exists()


async def test_two_serve_processes_share_the_queue_and_run_each_job_exactly_once(
    rig: Rig, fresh_db_url: str
) -> None:
    await rig.set_slots(4)
    ran = rig.home / "labfleet-builds" / "ran.txt"
    ids = [await rig.submit(command=f"echo {i} >> ../../ran.txt") for i in range(50)]
    async with Serve(rig, "a", fresh_db_url), Serve(rig, "b", fresh_db_url):
        jobs = [await rig.wait(i, timeout=120) for i in ids]
    assert [j.status for j in jobs] == ["succeeded"] * 50
    assert [j.attempt for j in jobs] == [1] * 50
    assert sorted(int(line) for line in ran.read_text().split()) == list(range(50))
    workers = {(await rig.log(i)).split(", worker ")[1].split()[0] for i in ids}
    assert 1 <= len(workers) <= 2
