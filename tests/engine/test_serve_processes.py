"""Real ``labfleet serve`` processes running builds: one killed with SIGKILL mid-build and started
again, and two sharing one queue. A job is recovered, never stuck, and never runs twice.

Validates: 3.3, 3.4 (durable queue: DESIGN.md, "State and work")
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sys
from types import TracebackType
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.enums import Role
from labfleet.services.core import tokens
from tests.build_rig import KEY, Rig
from tests.engine.test_build_worker import processes_in


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``labfleet serve`` on the rig's database, with short leases so recovery is quick.

    ``lease``: where no process dies, a longer one, so that a heartbeat held up by a busy
    machine (or SQLite's write lock) does not lose a lease the test never meant to lose.
    """

    def __init__(self, rig: Rig, name: str, db_url: str, *, lease: float = 2.0) -> None:
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
            "LABFLEET_BUILD_LEASE_SECONDS": str(lease),
            "LABFLEET_BUILD_HEARTBEAT_SECONDS": str(lease / 4),
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
    async with Serve(rig, "a", fresh_db_url, lease=20), Serve(rig, "b", fresh_db_url, lease=20):
        jobs = [await rig.wait(i, timeout=120) for i in ids]
    assert [j.status for j in jobs] == ["succeeded"] * 50
    assert [j.attempt for j in jobs] == [1] * 50
    assert sorted(int(line) for line in ran.read_text().split()) == list(range(50))
    workers = {(await rig.log(i)).split(", worker ")[1].split()[0] for i in ids}
    assert 1 <= len(workers) <= 2


async def _token(rig: Rig, role: Role = Role.viewer) -> str:
    async with rig.sessions() as session:
        _, secret = await tokens.create(session=session, actor=SYSTEM, name=f"ws-{role.name}", role=role)
        await session.commit()
    return secret


async def _follow(url: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    logs: list[dict[str, Any]] = []
    async with connect(url) as ws, asyncio.timeout(60):
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "log":
                logs.append(message)
            elif message["type"] == "end":
                return logs, message
    raise AssertionError("the stream ended without an end message")


async def test_the_events_websocket_streams_a_build_log_live_and_from_any_offset(
    rig: Rig, fresh_db_url: str
) -> None:
    token = await _token(rig)
    ident = await rig.submit(command="for i in $(seq 1 300); do echo line $i; sleep 0.002; done")
    async with Serve(rig, "a", fresh_db_url) as serve:
        base = f"ws://127.0.0.1:{serve.port}/api/v1/events"
        live, end = await _follow(f"{base}?topic=build-job:{ident}&log_offset=0&token={token}")
        assert end["status"] == "succeeded"
        stored = (await rig.log(ident)).encode()
        assert "".join(m["data"] for m in live).encode() == stored
        assert [m["offset"] for m in live] == [0, *itertools.accumulate(m["length"] for m in live[:-1])]
        assert end["size"] == len(stored)
        # Resuming from the middle replays exactly the rest.
        middle = len(stored) // 2
        rest, _ = await _follow(f"{base}?topic=build-job:{ident}&log_offset={middle}&token={token}")
        assert rest[0]["offset"] == middle
        assert "".join(m["data"] for m in rest).encode() == stored[middle:]
        # The same log over HTTP, by byte offset.
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
            r = await client.get(
                f"http://127.0.0.1:{serve.port}/api/v1/build-jobs/{ident}/logs?offset={middle}"
            )
        assert r.content == stored[middle:]
        assert r.headers["x-log-complete"] == "true"
        # The token given in the URL is kept out of the server's log.
        assert token not in serve.log.read_text()
        # No token, no events.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{base}?topic=build-jobs"):
                pass
        assert refused.value.response.status_code == 403
