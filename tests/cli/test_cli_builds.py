"""``labfleet builds``: against a real ``labfleet serve`` (its engine off, so builds stay queued),
and the log follower against a stand-in event stream that drops and lags.

The builds that really run, followed live, are in ``tests/lab/test_cli_builds_lab.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from labfleet.cli.build_follow import FollowError, Sink, Watch, stream
from labfleet.cli.client import Target
from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Toolchain
from tests.cli.test_cli_against_server import Server, admin_token, cli
from tests.helpers import interruptible

REPO = "https://git.example.org/linux.git"


def flat(text: str) -> str:
    """Output with Rich's line wrapping undone, for matching sentences."""
    return " ".join(text.split())


@pytest.fixture
def server(tmp_path: Path, fresh_db_url: str) -> Iterator[Server]:
    """``labfleet serve`` without its engine: submitted builds stay queued."""
    s = Server(tmp_path / "data", fresh_db_url)
    s.env["LABFLEET_ENGINE"] = "false"
    with s:
        yield s


@pytest.fixture
def token(server: Server) -> str:
    return admin_token(server)


def add_build_server(server: Server, token: str, hostname: str, address: str = "10.9.0.1") -> int:
    code, out = cli(
        server, "build-servers", "add", "--hostname", hostname, "--address", address,
        "--ssh-user", "build", "--ssh-password", "pw", "--json", token=token,
    )  # fmt: skip
    assert code == 0, out
    return int(json.loads(out)["id"])


def add_toolchain(server: Server, server_id: int, architecture: str = "x86_64") -> None:
    """What registration with device checks would have found on the server."""

    async def run() -> None:
        engine = create_engine(server.env["LABFLEET_DATABASE_URL"])
        try:
            async with session_factory(engine)() as session:
                session.add(
                    Toolchain(
                        build_server_id=server_id,
                        compiler="gcc",
                        target_triplet=f"{architecture}-linux-gnu",
                        architecture=architecture,
                        version="12.2.0",
                        path="/usr/bin/gcc",
                    )
                )
                await session.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


def submit(server: Server, token: str, *extra: str) -> tuple[int, str]:
    return cli(
        server, "builds", "submit", "--repo", REPO, "--branch", "main", "--arch", "x86_64",
        "--command", "make", *extra, token=token,
    )  # fmt: skip


def test_submit_checks_its_options_and_names_the_field(server: Server, token: str) -> None:
    base = ("builds", "submit", "--repo", REPO, "--arch", "x86_64")
    code, out = cli(server, *base, "--command", "make", token=token)
    assert code == 2 and "--branch" in out and "branch, a commit" in flat(out)
    code, out = cli(server, *base, "--branch", "main", token=token)
    assert code == 2 and "--command" in out
    code, out = cli(server, *base, "--branch", "main", "--command", "make", "--target", "all", token=token)
    assert code == 2 and "not both" in flat(out)
    code, out = cli(
        server, *base, "--branch", "main", "--command", "make", "--artifact", "out/x", token=token
    )
    assert code == 2 and "--artifact" in out and "PATH:TYPE[:NAME]" in out
    code, out = cli(
        server, *base, "--branch", "main", "--command", "make", "--artifact", "out/x:blob", token=token
    )
    assert code == 2 and "unknown type 'blob'" in flat(out) and "initramfs" in out

    # What only the server knows: a 422 with the field, shown as every command shows problems.
    code, out = cli(
        server, "builds", "submit", "--repo", REPO, "--branch", "main", "--arch", "sparc99",
        "--command", "make", token=token,
    )  # fmt: skip
    assert code == 1 and "error 422" in out and "architecture" in out
    code, out = cli(
        server, "builds", "submit", "--repo", "not a url", "--branch", "main", "--arch", "x86_64",
        "--command", "make", token=token,
    )  # fmt: skip
    assert code == 1 and "error 422" in out and "repository_url" in out
    code, out = submit(server, token, "--artifact", "../escape:kernel")
    assert code == 1 and "error 422" in out and "artifacts.0.path" in out
    code, out = submit(server, token, "--priority", "1000")
    assert code == 1 and "error 422" in out and "priority" in out


def test_an_empty_server_lists_nothing_and_unknown_jobs_are_404(server: Server, token: str) -> None:
    code, out = cli(server, "builds", "list", token=token)
    assert code == 0 and "0 build job(s)" in out
    code, out = cli(server, "builds", "list", "--json", token=token)
    assert code == 0 and json.loads(out) == {"count": 0, "items": []}
    for args in (
        ("show", "999"),
        ("cancel", "999"),
        ("retry", "999"),
        ("logs", "999"),
        ("logs", "999", "-f"),
    ):
        code, out = cli(server, "builds", *args, token=token)
        assert code == 1 and "error 404" in out and "no build job with id 999" in flat(out), (args, out)
    code, out = cli(server, "builds", "list", "--status", "bogus", token=token)
    assert code == 1 and "error 422" in out and "unknown status 'bogus'" in out
    code, out = cli(server, "builds", "list")
    assert code == 1 and "401" in out


def test_without_a_toolchain_a_submission_is_refused(server: Server, token: str) -> None:
    add_build_server(server, token, "bs1.lab")  # device checks off: no toolchain found
    code, out = submit(server, token)
    assert code == 1, out
    assert "error 422" in out and "no server has a toolchain for x86_64" in flat(out)
    assert "0 build job(s)" in cli(server, "builds", "list", token=token)[1]


def test_a_queued_build_submitted_shown_listed_cancelled_and_retried(server: Server, token: str) -> None:
    chosen = add_build_server(server, token, "bs1.lab")
    add_build_server(server, token, "bs2.lab", "10.9.0.2")
    add_toolchain(server, chosen)

    code, out = submit(server, token, "--artifact", "out/x86_64/initramfs.cpio.gz:initramfs:rootfs.cpio.gz")
    assert code == 0, out
    text = flat(out)
    assert "build job 1 submitted: x86_64 main of https://git.example.org/linux.git" in text
    assert "placed on bs1.lab: bs1.lab chosen" in text
    assert "excluded bs2.lab (#2): no toolchain for x86_64" in text
    assert "estimated start:" in text and "(now)" in text

    code, out = submit(server, token, "--server", "bs2.lab", "--json")
    assert code == 1 and "error 422" in out and "bs2.lab cannot take it: no toolchain" in flat(out)

    code, out = cli(server, "builds", "list", token=token)
    assert code == 0, out
    assert "1 build job(s)" in out and "bs1.lab" in out and "Queued" in out and "│ now" in out
    code, out = cli(server, "builds", "list", "--status", "running", "--json", token=token)
    assert json.loads(out)["count"] == 0
    code, out = cli(server, "builds", "list", "--arch", "x86_64", "--repo", REPO, "--json", token=token)
    assert [j["id"] for j in json.loads(out)["items"]] == [1]

    code, out = cli(server, "builds", "show", "1", "--explain", token=token)
    assert code == 0, out
    text = flat(out)
    assert "placement: assigned — bs1.lab chosen" in text and "candidates" in text
    assert "excluded: no toolchain for x86_64" in text and "chosen, can start now" in text
    code, out = cli(server, "builds", "show", "1", "--json", token=token)
    shown = json.loads(out)
    assert shown["status"]["value"] == "queued" and shown["decision"] is None
    assert shown["artifact_specs"] == [
        {"path": "out/x86_64/initramfs.cpio.gz", "type": "initramfs", "name": "rootfs.cpio.gz"}
    ]

    code, out = cli(server, "builds", "retry", "1", token=token)
    assert code == 1 and "error 409" in out and "still queued" in out

    code, out = cli(server, "builds", "cancel", "1", token=token)
    assert code == 0 and "build job 1: Cancelled" in out, out
    code, out = cli(server, "builds", "cancel", "1", token=token)
    assert code == 1 and "error 409" in out

    # Following a build that has ended replays its log and says how it ended.
    code, out = cli(server, "builds", "logs", "1", "--follow", token=token)
    assert code == 1, out
    assert "build job 1 cancelled" in out and "cancelled by admin-cli" in flat(out)
    code, out = cli(server, "builds", "logs", "1", token=token)
    assert code == 0 and out == ""

    code, out = cli(server, "builds", "retry", "1", "--json", token=token)
    assert code == 0, out
    again = json.loads(out)
    assert again["id"] == 2 and again["retry_of_id"] == 1 and again["attempt"] == 2
    assert again["decision"]["explanation"]["chosen_id"] == chosen


def test_ctrl_c_stops_following_and_says_how_to_resume(server: Server, token: str) -> None:
    add_toolchain(server, add_build_server(server, token, "bs1.lab"))
    assert submit(server, token)[0] == 0
    env = {**server.env, "LABFLEET_URL": server.url, "LABFLEET_TOKEN": token}
    proc = subprocess.Popen(
        [sys.executable, "-m", "labfleet.cli.main", "builds", "logs", "1", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "following build job 1" in first, first
        time.sleep(1.0)  # connected and waiting: the build is queued, nobody runs it
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert "stopped following build job 1; the build goes on" in flat(rest)
    assert "labfleet builds logs 1 --follow" in rest
    assert "Traceback" not in rest


# -- the follower against a stand-in for /api/v1/events


class Collect(Sink):
    def __init__(self, watch: Watch) -> None:
        quiet = Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115
        super().__init__(watch, quiet, quiet)
        self.texts: list[str] = []

    def write(self, data: bytes) -> None:
        self.texts.append(data.decode())


def log(offset: int, data: str) -> str:
    return json.dumps({"topic": "build-job:7", "type": "log", "job": 7, "offset": offset, "data": data})


async def follow_fake(script: list[list[str | None]], **serve_args: Any) -> tuple[str, list[int], str]:
    """Serve one list of messages per connection (None: drop the connection); the status, offsets asked."""
    asked: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        assert query["topic"] == ["build-job:7"]
        asked.append(int(query["log_offset"][0]))
        for message in script[len(asked) - 1]:
            if message is None:
                ws.transport.abort()  # as a network that breaks does
                return
            await ws.send(message)

    async with serve(handler, "127.0.0.1", 0, **serve_args) as fake:
        port = fake.sockets[0].getsockname()[1]
        watch = Watch(job_id=7, status="running")
        sink = Collect(watch)
        with sink:
            status = await stream(Target(url=f"http://127.0.0.1:{port}", token="lf_x"), watch, sink)
        assert watch.size == sum(len(t.encode()) for t in sink.texts)
        return status, asked, "".join(sink.texts)


async def test_the_follower_resumes_from_its_offset_after_a_lag_or_a_drop() -> None:
    end = json.dumps({"topic": "build-job:7", "type": "end", "job": 7, "status": "succeeded", "size": 18})
    status_event = json.dumps({"topic": "build-job:7", "type": "status", "job": 7, "status": "running"})
    status, asked, text = await follow_fake(
        [
            [log(0, "one\n"), log(4, "two\n"), json.dumps({"type": "lagged"})],
            [log(4, "two\nthree\n"), None],  # repeats what it has; then the connection breaks
            [status_event, log(8, "three\n"), log(14, "fïn\n"), end],
        ]
    )
    assert status == "succeeded"
    assert asked == [0, 8, 14]
    assert text == "one\ntwo\nthree\nfïn\n"


async def test_the_follower_reports_a_refused_stream_and_a_job_error() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "no\n")

    with pytest.raises(FollowError, match="refused the event stream"):
        await follow_fake([[]], process_request=refuse)
    error = json.dumps(
        {"topic": "build-job:7", "type": "error", "job": 7, "detail": "no build job with id 7"}
    )
    with pytest.raises(FollowError, match="no build job with id 7"):
        await follow_fake([[error]])


async def test_the_follower_gives_up_after_a_run_of_failed_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("labfleet.cli.follow_core._RECONNECT_TRIES", 2)
    monkeypatch.setattr("labfleet.cli.follow_core._RECONNECT_MAX_WAIT", 0.01)
    watch = Watch(job_id=7, status="running", size=5)
    with Collect(watch) as sink, pytest.raises(FollowError, match="lost the event stream"):
        await stream(Target(url="http://127.0.0.1:1", token="lf_x"), watch, sink)
    assert watch.note.startswith("reconnecting: ") and watch.size == 5
