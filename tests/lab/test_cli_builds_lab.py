"""``labfleet builds`` end to end: a real ``labfleet serve`` (device checks and engine on) building
the lab's repository on the lab's build server, the log followed live over the WebSocket.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli_against_server import Server, admin_token, cli
from tests.lab.conftest import VirtualLab, on

pytestmark = pytest.mark.lab

ARTIFACT = "out/x86_64/initramfs.cpio.gz:initramfs"
# Lines the CLI writes to stderr around the log it follows.
_FOLLOWER = re.compile(r"^(following build job \d+ |build job \d+[: ])")


@pytest.fixture
def server(lab: VirtualLab, tmp_path: Path, fresh_db_url: str) -> Iterator[Server]:
    s = Server(tmp_path / "data", fresh_db_url)
    s.env |= {
        "LABFLEET_DEVICE_CHECKS": "true",  # registration finds the server's toolchains
        "LABFLEET_BUILD_HEARTBEAT_SECONDS": "1",
        "LABFLEET_BUILD_LEASE_SECONDS": "30",
        "LABFLEET_BUILD_MAX_ATTEMPTS": "1",
    }
    with s:
        yield s


@pytest.fixture
def token(server: Server, lab: VirtualLab) -> str:
    token = admin_token(server)
    code, out = cli(
        server, "build-servers", "add", "--hostname", "lab-build", "--address", lab.host,
        "--ssh-user", lab.build_user, "--ssh-port", str(lab.ssh_port), "--ssh-key", str(lab.private_key),
        "--max-builds", "2", "--json", token=token,
    )  # fmt: skip
    assert code == 0, out
    assert "x86_64" in {t["architecture"] for t in json.loads(out)["toolchains"]}, out
    return token


def submit(server: Server, token: str, lab: VirtualLab, command: str, *extra: str) -> tuple[int, str]:
    return cli(
        server, "builds", "submit", "--repo", lab.repo_url, "--branch", lab.repo_branch, "--arch", "x86_64",
        "--command", command, "--timeout", "600", *extra, token=token,
    )  # fmt: skip


def job_id(out: str) -> int:
    found = re.search(r"build job (\d+) submitted", out)
    assert found, out
    return int(found.group(1))


def shown(server: Server, token: str, ident: int) -> dict[str, Any]:
    code, out = cli(server, "builds", "show", str(ident), "--json", token=token)
    assert code == 0, out
    return dict(json.loads(out))


def wait_for(server: Server, token: str, ident: int, statuses: set[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = shown(server, token, ident)
        if job["status"]["value"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.5)


def log_of(followed: str) -> str:
    """The log part of what ``--follow`` printed: from its first line on, without the follower's lines."""
    start = followed.index("labfleet: attempt 1 of build job")
    return "".join(line for line in followed[start:].splitlines(keepends=True) if not _FOLLOWER.match(line))


@on("sqlite")
def test_submit_follow_streams_the_build_and_logs_replays_it(
    lab: VirtualLab, server: Server, token: str
) -> None:
    code, out = submit(server, token, lab, "make", "--artifact", ARTIFACT, "--follow")
    assert code == 0, out
    ident = job_id(out)
    # Chosen at once, or queued on it when this machine's load is above the per-core limit.
    assert "placed on lab-build: " in out
    assert "labfleet: checked out " in out
    assert "labfleet: succeeded: 1 artifact(s) stored" in out
    assert f"build job {ident} succeeded" in out

    job = shown(server, token, ident)
    assert job["status"]["value"] == "succeeded" and job["failure_reason"] is None
    code, stored = cli(server, "builds", "logs", str(ident), token=token)
    assert code == 0
    assert stored.startswith(f"labfleet: attempt 1 of build job {ident} on lab-build")
    assert len(stored.encode()) == job["log_size"]
    # What was followed live is the stored log, nothing lost and nothing repeated.
    assert log_of(out) == stored

    # From an offset, and followed once the build is over: the rest, then how it ended.
    code, tail = cli(server, "builds", "logs", str(ident), "--offset", "10", token=token)
    assert code == 0 and tail.encode() == stored.encode()[10:]
    code, again = cli(server, "builds", "logs", str(ident), "--follow", token=token)
    assert code == 0 and log_of(again) == stored


@on("sqlite")
def test_a_failing_build_exits_1_with_its_reason(lab: VirtualLab, server: Server, token: str) -> None:
    code, out = submit(server, token, lab, "echo boom; exit 3", "--follow")
    assert code == 1, out
    ident = job_id(out)
    text = " ".join(out.split())
    assert "\nboom\n" in out
    assert f"build job {ident} failed" in text
    assert "the build failed with exit status 3: boom" in text
    assert shown(server, token, ident)["status"]["value"] == "failed"

    code, out = cli(server, "builds", "retry", str(ident), "--follow", token=token)
    assert code == 1, out
    assert f"retry of {ident}" in out and "exit status 3" in out


@on("postgresql")
def test_cancel_stops_a_running_build(lab: VirtualLab, server: Server, token: str) -> None:
    code, out = submit(server, token, lab, "echo sleeping; sleep 600")
    assert code == 0, out
    ident = job_id(out)
    env = {**server.env, "LABFLEET_URL": server.url, "LABFLEET_TOKEN": token}
    follower = subprocess.Popen(
        [sys.executable, "-m", "labfleet.cli.main", "builds", "logs", str(ident), "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(server, token, ident, {"running"}, timeout=120)
        deadline = time.monotonic() + 120
        while "sleeping" not in cli(server, "builds", "logs", str(ident), token=token)[1]:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        code, out = cli(server, "builds", "cancel", str(ident), token=token)
        assert code == 0 and "cancel asked" in out, out
        job = wait_for(server, token, ident, {"cancelled", "failed", "succeeded"}, timeout=60)
        assert job["status"]["value"] == "cancelled", job
        assert job["failure_reason"] == "cancelled by admin-cli"
        printed, said = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 1, said
    assert "sleeping" in printed and "the remote process group was killed" in printed
    assert f"build job {ident} cancelled" in said and "cancelled by admin-cli" in said
    code, out = cli(server, "builds", "cancel", str(ident), token=token)
    assert code == 1 and "error 409" in out
