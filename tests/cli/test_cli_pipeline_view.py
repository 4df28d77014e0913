"""``labfleet pipelines``: the test plan file, the progress model fed a recorded event sequence,
the report; and the commands against a stand-in for the server (HTTP and the event stream)
that lags and drops, as the real one may.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from typer.testing import CliRunner

from labfleet.cli.main import app
from labfleet.cli.pipeline_progress import Progress
from labfleet.cli.pipeline_report import report
from labfleet.cli.pipeline_view import exit_code
from labfleet.cli.plan_file import PlanError, load_plan, plan_body
from labfleet.schemas.common import StatusOut
from labfleet.schemas.enums import (
    EnvironmentStatus,
    PipelineStatus,
    StageStatus,
    TestResultStatus,
    WorkStatus,
)
from tests.helpers import free_port, interruptible

REPO = "https://git.example.org/linux.git"
T0 = "2030-01-02T03:04:00+00:00"

PLAN_TOML = """\
[build]
defconfig = "x86_64_defconfig"
make_target = "bzImage"
timeout_s = 1800

[[build.artifacts]]
path = "arch/{arch}/boot/bzImage"
type = "kernel"

[boot]
pattern = "login:"
timeout_s = 120

[requirements]
vcpus = 2
memory_mb = 512

[[tests]]
name = "uname"
command = "uname -a"

[[tests]]
name = "ls-missing"
command = "ls /missing"
timeout_s = 10
"""


def flat(text: str) -> str:
    """Output with line wrapping (and Rich's error box) undone, for matching sentences."""
    return " ".join(text.replace("│", " ").split())


def at(seconds: float) -> str:
    """A time of the API, ``seconds`` after T0."""
    minutes, secs = divmod(seconds, 60)
    return f"2030-01-02T03:{4 + int(minutes):02d}:{secs:06.3f}+00:00"


# -- the test plan file


def test_a_plan_loads_from_toml_and_json_alike(tmp_path: Path) -> None:
    toml = tmp_path / "plan.toml"
    toml.write_text(PLAN_TOML)
    plan = load_plan(toml)
    assert [t.name for t in plan.tests] == ["uname", "ls-missing"]
    assert plan.build.artifacts[0].path == "arch/{arch}/boot/bzImage"  # the server substitutes
    assert (plan.requirements.vcpus, plan.boot.pattern, plan.tests[1].timeout_s) == (2, "login:", 10)

    body = plan_body(plan)
    as_json = tmp_path / "plan.json"
    as_json.write_text(json.dumps(body))
    assert load_plan(as_json) == plan
    # What is sent is what the file said, checked: no defaults added that the file did not set.
    assert body["tests"][0] == {"name": "uname", "command": "uname -a"}
    assert body["build"]["artifacts"] == [{"path": "arch/{arch}/boot/bzImage", "type": "kernel"}]


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (
            lambda d: d["tests"][1].update(command="ls\nrm -rf /"),
            'tests[1] "ls-missing".command',
            "a test command is one line",
        ),
        (lambda d: d["build"]["artifacts"][0].update(type="blob"), "build.artifacts[0].type", "kernel"),
        (lambda d: d["build"].update(comand="make"), "build.comand", "unknown field"),
        (lambda d: d.pop("tests"), "tests", "missing (required)"),
        (lambda d: d["boot"].update(pattern="(unclosed"), "boot.pattern", "not a regular expression"),
        (lambda d: d["tests"].append({"name": "x"}), 'tests[2] "x".command', "missing"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(
    tmp_path: Path, edit: Callable[[dict[str, Any]], Any], field: str, reason: str
) -> None:
    data = plan_body(load_plan(_write(tmp_path / "good.toml", PLAN_TOML)))
    edit(data)
    path = _write(tmp_path / "plan.json", json.dumps(data))
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert any(p.startswith(f"{field}: ") and reason in p for p in caught.value.problems), (
        caught.value.problems
    )
    assert str(caught.value).startswith(f"{path}: ")


def test_a_plan_that_is_no_toml_or_json_says_so(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"\.toml or \.json"):
        load_plan(_write(tmp_path / "plan.yaml", "build: {}"))
    with pytest.raises(PlanError, match="not valid TOML"):
        load_plan(_write(tmp_path / "plan.toml", "[build\n"))
    with pytest.raises(PlanError, match="not valid JSON"):
        load_plan(_write(tmp_path / "plan.json", "{"))
    with pytest.raises(PlanError, match="expected a table"):
        load_plan(_write(tmp_path / "plan.json", "[1]"))
    with pytest.raises(PlanError, match="No such file"):
        load_plan(tmp_path / "missing.toml")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- what the server sends, recorded


def stage(
    name: str,
    status: str = "pending",
    start: float | None = None,
    end: float | None = None,
    error: str | None = None,
    attempt: int = 1,
    **resources: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "status": status,
        "attempt": attempt if status != "pending" else 0,
        "started_at": at(start) if start is not None else None,
        "finished_at": at(end) if end is not None else None,
        "error": error,
        "resources": resources,
    }


def result(name: str, status: str, exit_status: int | None) -> dict[str, Any]:
    return {"name": name, "status": status, "exit_status": exit_status}


def status_event(
    status: str,
    stages: list[dict[str, Any]],
    tests: list[dict[str, Any]] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    running = [s["name"] for s in stages if s["status"] == "running"]
    return {
        "topic": "pipeline:7",
        "type": "status",
        "pipeline": 7,
        "status": status,
        "stage": running[0] if running else None,
        "stages": stages,
        "tests": tests or [],
        "error": error,
    }


def pending(*names: str) -> list[dict[str, Any]]:
    return [stage(n) for n in names]


BUILD = {"build_server": "bs1.lab", "build_job": 4}
HOST = {"host": "qemu1.lab", "environment": 3}
BUILT = stage("build", "succeeded", 0, 12.3, **BUILD)
DEPLOYED = stage("deploy", "succeeded", 12.3, 15.3, **HOST)
BOOTED = stage("boot", "succeeded", 15.3, 35.4, **HOST)

LOG = [
    "labfleet: building on bs1.lab\n",
    "  CC      init/main.o\n",
    "labfleet: deploying to qemu1.lab\n",
    "Linux version 6.9.0 (gcc) — booted ✓\n",
    "$ uname -a\nLinux qemu 6.9.0\n$ ls /missing\nls: /missing: No such file or directory\n",
]
FULL = "".join(LOG).encode()


def log(index: int) -> dict[str, Any]:
    offset = len("".join(LOG[:index]).encode())
    data = LOG[index]
    return {
        "topic": "pipeline:7",
        "type": "log",
        "pipeline": 7,
        "offset": offset,
        "length": len(data.encode()),
        "data": data,
    }


FAILED_EVENTS: list[dict[str, Any]] = [
    status_event("queued", pending("build", "deploy", "boot", "test")),
    status_event("running", [stage("build", "running", 0, **BUILD), *pending("deploy", "boot", "test")]),
    log(0),
    log(1),
    status_event("running", [BUILT, stage("deploy", "running", 12.3, **HOST), *pending("boot", "test")]),
    log(2),
    status_event("running", [BUILT, DEPLOYED, stage("boot", "running", 15.3, **HOST), stage("test")]),
    log(3),
    status_event("running", [BUILT, DEPLOYED, BOOTED, stage("test", "running", 35.4, **HOST)]),
    log(4),
    status_event(
        "running",
        [BUILT, DEPLOYED, BOOTED, stage("test", "running", 35.4, **HOST)],
        [result("uname", "passed", 0)],
    ),
    status_event(
        "failed",
        [BUILT, DEPLOYED, BOOTED, stage("test", "failed", 35.4, 40.6, error="1 of 2 tests failed", **HOST)],
        [result("uname", "passed", 0), result("ls-missing", "failed", 2)],
        error="tests failed",
    ),
    {"topic": "pipeline:7", "type": "end", "pipeline": 7, "status": "failed", "size": len(FULL)},
]

FAILED_LINES = [
    "pipeline 7: queued",
    "pipeline 7: running",
    "stage build: running · build server bs1.lab, build job 4",
    "stage build: succeeded (12.3 s)",
    "stage deploy: running · host qemu1.lab, environment 3",
    "stage deploy: succeeded (3.0 s)",
    "stage boot: running · host qemu1.lab, environment 3",
    "stage boot: succeeded (20.1 s)",
    "stage test: running · host qemu1.lab, environment 3",
    "test uname: PASS (exit 0)",
    "test ls-missing: FAIL (exit 2)",
    "stage test: failed (5.2 s): 1 of 2 tests failed",
]


def test_a_recorded_event_sequence_drives_the_progress_model() -> None:
    progress = Progress(pipeline_id=7)
    lines: list[str] = []
    data = b""
    ends = []
    for message in FAILED_EVENTS:
        applied = progress.apply(message)
        assert applied.reconnect is None and applied.error is None
        lines += applied.lines
        data += applied.data
        if applied.end:
            ends.append((applied.end, applied.end_size))
    assert lines == FAILED_LINES
    assert data == FULL and progress.size == len(FULL)
    assert ends == [("failed", len(FULL))]
    assert progress.status == "failed" and progress.error == "tests failed"
    assert [(s.name, s.status) for s in progress.stages.values()] == [
        ("build", "succeeded"),
        ("deploy", "succeeded"),
        ("boot", "succeeded"),
        ("test", "failed"),
    ]
    assert progress.stages["test"].took == pytest.approx(5.2)
    assert [(t.name, t.status, t.exit_status) for t in progress.tests] == [
        ("uname", "passed", 0),
        ("ls-missing", "failed", 2),
    ]


def test_the_same_snapshot_again_says_nothing_and_a_retried_stage_is_said_again() -> None:
    progress = Progress(pipeline_id=7)
    for message in FAILED_EVENTS[:-1]:
        progress.apply(message)
    # A reconnection's first message is a snapshot of what is already known: nothing new.
    assert progress.apply(FAILED_EVENTS[-2]).lines == []
    retried = status_event(
        "running", [BUILT, DEPLOYED, BOOTED, stage("test", "running", 50, attempt=2, **HOST)], []
    )
    assert progress.apply(retried).lines == [
        "pipeline 7: running",
        "stage test: running (attempt 2) · host qemu1.lab, environment 3",
    ]
    again = status_event(
        "running",
        [BUILT, DEPLOYED, BOOTED, stage("test", "running", 50, attempt=2, **HOST)],
        [result("uname", "passed", 0)],
    )
    assert progress.apply(again).lines == ["test uname: PASS (exit 0)"]


def test_log_pieces_are_taken_by_byte_offset_once_each() -> None:
    progress = Progress(pipeline_id=7)
    assert progress.apply(log(0)).data == LOG[0].encode()
    assert progress.apply(log(0)).data == b""  # a replay of what it has
    both = {**log(1), "data": LOG[1] + LOG[2], "length": len((LOG[1] + LOG[2]).encode())}
    assert progress.apply(both).data == (LOG[1] + LOG[2]).encode()
    overlap = {**log(2), "data": LOG[2] + LOG[3], "length": len((LOG[2] + LOG[3]).encode())}
    assert progress.apply(overlap).data == LOG[3].encode()  # only the part past what it has
    size = progress.size
    assert size == len("".join(LOG[:4]).encode())
    assert progress.apply(log(1)).data == b"" and progress.size == size  # an old piece, again
    gap = progress.apply({**log(4), "offset": size + 10})
    assert gap.data == b"" and gap.reconnect is not None and "skipped" in gap.reconnect
    assert progress.size == size
    assert progress.apply({"type": "lagged"}).reconnect == "the stream lagged"
    assert (
        progress.apply({"type": "error", "detail": "no pipeline with id 7"}).error == "no pipeline with id 7"
    )


# -- the report


def shown(status: WorkStatus) -> dict[str, Any]:
    """A status as the API shows it (StatusOut)."""
    return StatusOut.of(status).model_dump()


def pipeline(
    status: str, stages: list[dict[str, Any]], tests: list[dict[str, Any]], error: str | None = None
) -> dict[str, Any]:
    """A pipeline as the API shows it (PipelineOut); its stages and tests as events give them."""
    for s in stages:
        start, end = s["started_at"], s["finished_at"]
        s.setdefault("position", ["build", "deploy", "boot", "test"].index(s["name"]))
        s.setdefault("duration_s", None)
        s.setdefault("log_start", None)
        s.setdefault("log_end", None)
        assert start is None or end is None or start <= end
    return {
        "id": 7,
        "url": "http://lab/api/v1/pipelines/7",
        "display": "pipeline 7",
        "repository_url": REPO,
        "branch": "main",
        "requested_commit": None,
        "resolved_commit": "0123456789abcdef0123",
        "architecture": "x86_64",
        "environment_type": "qemu",
        "target": "auto",
        "status": shown(PipelineStatus(status)),
        "submitted_by": "alice",
        "team": None,
        "build_job_id": 4,
        "environment_id": 3,
        "created_at": T0,
        "started_at": T0 if status != "queued" else None,
        "finished_at": at(40.6) if status in ("succeeded", "failed", "cancelled") else None,
        "error": error,
        "cancel_requested_at": None,
        "log_size": len(FULL),
        "logs_url": "http://lab/api/v1/pipelines/7/logs",
        "stages": [{**s, "status": shown(StageStatus(s["status"]))} for s in stages],
        "tests": [
            {
                "command": "x",
                "output": "",
                "attempt": 1,
                "started_at": T0,
                "finished_at": T0,
                "duration_s": 0.2,
                **t,
                "status": shown(TestResultStatus(t["status"])),
            }
            for t in tests
        ],
        "spec": {
            "tests": [
                {"name": "uname", "command": "uname -a"},
                {"name": "ls-missing", "command": "ls /missing"},
            ]
        },
    }


def succeeded() -> dict[str, Any]:
    return pipeline(
        "succeeded",
        [{**BUILT}, {**DEPLOYED}, {**BOOTED}, stage("test", "succeeded", 35.4, 40.6, **HOST)],
        [result("uname", "passed", 0), result("ls-missing", "passed", 0)],
    )


def failed() -> dict[str, Any]:
    return pipeline(
        "failed",
        [
            {**BUILT},
            {**DEPLOYED},
            {**BOOTED},
            stage("test", "failed", 35.4, 40.6, error="1 of 2 tests failed", **HOST),
        ],
        [result("uname", "passed", 0), result("ls-missing", "failed", 2)],
        error="tests failed",
    )


def plain(lines: list[Any]) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=100)
    for line in lines:
        console.print(line, soft_wrap=True)
    return buffer.getvalue()


def test_the_report_of_a_succeeded_pipeline() -> None:
    text = plain(report(succeeded()))
    lines = text.splitlines()
    assert lines[0] == (f"pipeline 7: succeeded — x86_64 main @ 0123456789ab of {REPO} on qemu")
    assert lines[1] == "stages:"
    assert lines[2].split() == [
        "build",
        "succeeded",
        "12.3",
        "s",
        "build",
        "server",
        "bs1.lab,",
        "build",
        "job",
        "4",
    ]
    assert lines[3].split()[:4] == ["deploy", "succeeded", "3.0", "s"]
    assert lines[4].split()[:4] == ["boot", "succeeded", "20.1", "s"]
    assert lines[5].split()[:4] == ["test", "succeeded", "5.2", "s"]
    assert lines[6] == "tests: 2 of 2 passed"
    assert lines[7].split() == ["PASS", "uname", "exit", "0", "0.2", "s"]
    assert lines[8].split() == ["PASS", "ls-missing", "exit", "0", "0.2", "s"]
    assert lines[9] == "pipeline 7 succeeded in 40s: 2 of 2 tests passed"
    assert len(lines) == 10
    assert exit_code("succeeded") == 0


def test_the_report_of_a_failed_pipeline_names_the_failing_test() -> None:
    text = plain(report(failed()))
    lines = text.splitlines()
    assert lines[0].startswith("pipeline 7: failed — ")
    assert lines[5].split()[:4] == ["test", "failed", "5.2", "s"]
    assert lines[6].strip() == "error: 1 of 2 tests failed"
    assert lines[7] == "tests: 1 of 2 passed"
    assert lines[8].split() == ["PASS", "uname", "exit", "0", "0.2", "s"]
    assert lines[9].split() == ["FAIL", "ls-missing", "exit", "2", "0.2", "s"]
    assert lines[10] == "pipeline 7 failed in 40s: tests failed; 1 of 2 tests failed: ls-missing"
    assert exit_code("failed") == 1 and exit_code("cancelled") == 1


def test_the_report_of_a_pipeline_that_failed_to_boot_lists_the_tests_not_run() -> None:
    p = pipeline(
        "failed",
        [
            {**BUILT},
            {**DEPLOYED},
            stage("boot", "failed", 15.3, 315.3, error="no login: in 300 s", **HOST),
            stage("test", "skipped"),
        ],
        [],
        error="boot failed",
    )
    lines = plain(report(p)).splitlines()
    assert lines[4].split()[:4] == ["boot", "failed", "5m00s", "host"]
    assert lines[5].strip() == "error: no login: in 300 s"
    assert lines[6].split() == ["test", "skipped", "-"]
    assert lines[7:] == [
        "tests: 0 of 2 passed",
        "  NOT RUN uname",
        "  NOT RUN ls-missing",
        "pipeline 7 failed in 40s: boot failed",
    ]


# -- the commands, against a stand-in for the server


@dataclass
class StandIn:
    """``/api/v1`` as far as pipelines go: one script of actions per event-stream connection.

    An action is a message to send (a log message is stored as it is sent, as the server
    stores before it announces), ``"close"`` to end the connection, ``"hold"`` to keep it
    open until the client goes, or a callable that changes the state.
    """

    script: list[list[Any]]
    pipeline: dict[str, Any]
    stored: int = 0
    complete: bool = False
    asked: list[int] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    env_answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """``/environments``: the answer to the POST, then to each GET, in turn."""

    def app(self) -> Starlette:
        async def create(request: Request) -> JSONResponse:
            self.requests.append("POST /pipelines")
            self.posted.append(await request.json())
            return JSONResponse(self.pipeline, status_code=201)

        async def one(request: Request) -> JSONResponse:
            self.requests.append(f"GET /pipelines/{request.path_params['ident']}")
            return JSONResponse(self.pipeline)

        async def logs(request: Request) -> JSONResponse:
            offset = int(request.query_params.get("offset", 0))
            self.requests.append(f"GET logs {offset}")
            data = FULL[offset : self.stored]
            page = {
                "offset": offset,
                "size": self.stored,
                "next_offset": offset + len(data),
                "complete": self.complete,
                "data": data.decode(),
            }
            return JSONResponse(page)

        async def events(ws: WebSocket) -> None:
            assert ws.query_params["topic"] == "pipeline:7"
            assert ws.headers["authorization"] == "Bearer lf_test"
            await ws.accept()
            self.asked.append(int(ws.query_params["log_offset"]))
            actions = self.script[len(self.asked) - 1] if len(self.asked) <= len(self.script) else []
            for action in actions:
                if action == "close":
                    break
                if action == "hold":
                    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                        while (await ws.receive())["type"] != "websocket.disconnect":
                            pass
                    return
                if callable(action):
                    action()
                    continue
                if action.get("type") == "log":
                    self.stored = max(self.stored, action["offset"] + action["length"])
                await ws.send_text(json.dumps(action))
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await ws.close()

        async def environment(request: Request) -> JSONResponse:
            self.requests.append(f"{request.method} {request.url.path} {request.url.query}".strip())
            if request.method == "POST":
                self.posted.append(await request.json())
            code, body = self.env_answers.pop(0)
            return JSONResponse(body, status_code=code)

        return Starlette(
            routes=[
                Route("/api/v1/environments", environment, methods=["POST"]),
                Route("/api/v1/environments/{ident:int}", environment),
                Route("/api/v1/pipelines", create, methods=["POST"]),
                Route("/api/v1/pipelines/{ident:int}", one),
                Route("/api/v1/pipelines/{ident:int}/logs", logs),
                WebSocketRoute("/api/v1/events", events),
            ]
        )


@pytest.fixture
def serve_stand_in() -> Iterator[Callable[[StandIn], str]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(stand_in: StandIn) -> str:
        port = free_port()
        config = uvicorn.Config(
            stand_in.app(),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the stand-in did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def invoke(url: str, *args: str) -> Any:
    runner = CliRunner()
    env = {"LABFLEET_CLI_CONFIG": "/nonexistent/cli.toml"}
    return runner.invoke(app, ["--url", url, "--token", "lf_test", *args], env=env)


def test_follow_a_pipeline_that_fails_through_a_lag_and_a_drop(serve_stand_in: Any) -> None:
    e = FAILED_EVENTS
    stand_in = StandIn(script=[], pipeline=pipeline("queued", pending("build", "deploy", "boot", "test"), []))

    def store_unsent() -> None:  # written and stored, the connection drops before it is sent
        stand_in.stored = len("".join(LOG[:4]).encode())

    def finish() -> None:
        stand_in.pipeline = failed()
        stand_in.complete = True

    stand_in.script = [
        [e[0], e[1], e[2], e[3], {"type": "lagged"}],
        [e[1], e[4], e[5], e[6], store_unsent, "close"],
        [e[6], e[8], e[9], e[10], finish, e[11], e[12]],
    ]
    url = serve_stand_in(stand_in)
    outcome = invoke(url, "pipelines", "follow", "7")
    assert outcome.exit_code == 1, outcome.output
    # The log on stdout, each byte once, whatever the stream repeated or missed; then the report.
    assert outcome.stdout.startswith("".join(LOG)), outcome.stdout
    report_text = outcome.stdout[len("".join(LOG)) :]
    assert "FAIL    ls-missing  exit 2" in report_text
    assert (
        report_text.splitlines()[-1]
        == "pipeline 7 failed in 40s: tests failed; 1 of 2 tests failed: ls-missing"
    )
    # Progress as plain lines on stderr (no terminal here), reconnections said.
    said = [line for line in outcome.stderr.splitlines() if line]
    assert said[0].startswith("following pipeline 7 (Ctrl-C stops following")
    expected = [
        *FAILED_LINES[:3],
        "pipeline 7: reconnecting: the stream lagged",
        *FAILED_LINES[3:7],
        "pipeline 7: reconnecting: the server closed the stream",
        *FAILED_LINES[7:],
    ]
    assert said[1:] == expected
    # Each connection asked for the log from where the follower was.
    two = len("".join(LOG[:2]).encode())
    assert stand_in.asked == [0, two, len("".join(LOG[:4]).encode())]
    assert "Traceback" not in outcome.output


def test_following_a_finished_pipeline_prints_its_log_and_report_without_the_stream(
    serve_stand_in: Any,
) -> None:
    stand_in = StandIn(script=[], pipeline=succeeded(), stored=len(FULL), complete=True)
    url = serve_stand_in(stand_in)
    outcome = invoke(url, "pipelines", "follow", "7", "--offset", str(len(LOG[0].encode())))
    assert outcome.exit_code == 0, outcome.output
    assert outcome.stdout.startswith("".join(LOG[1:]))
    assert "pipeline 7 succeeded in 40s: 2 of 2 tests passed" in outcome.stdout
    assert stand_in.asked == []  # all of it stored and complete: no event stream needed
    quiet = invoke(url, "pipelines", "follow", "7", "--quiet")
    assert quiet.exit_code == 0 and LOG[0] not in quiet.stdout
    assert quiet.stdout.startswith("pipeline 7: succeeded")


def test_run_checks_the_plan_first_then_submits_and_follows(serve_stand_in: Any, tmp_path: Path) -> None:
    stand_in = StandIn(script=[], pipeline=pipeline("queued", pending("build", "deploy", "boot", "test"), []))
    done = succeeded()

    def finish() -> None:
        stand_in.pipeline = done
        stand_in.complete = True

    end = {"topic": "pipeline:7", "type": "end", "pipeline": 7, "status": "succeeded", "size": len(FULL)}
    stand_in.script = [
        [*(log(i) for i in range(5)), finish, status_event("succeeded", done["stages"], done["tests"]), end]
    ]
    url = serve_stand_in(stand_in)
    base = ("pipelines", "run", "--repo", REPO, "--branch", "main", "--arch", "arm64")

    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN_TOML.replace('type = "kernel"', 'type = "blob"'))
    outcome = invoke(url, *base, "--test-plan", str(bad))
    assert outcome.exit_code == 2
    assert "--test-plan" in outcome.output and "build.artifacts[0].type" in flat(outcome.output)
    assert stand_in.requests == []  # nothing sent

    plan = _write(tmp_path / "plan.toml", PLAN_TOML)
    outcome = invoke(url, *base, "--test-plan", str(plan), "--env-type", "qemu", "--follow")
    assert outcome.exit_code == 0, outcome.output
    sent = stand_in.posted[0]
    assert (sent["repository_url"], sent["branch"], sent["architecture"]) == (REPO, "main", "arm64")
    assert (sent["environment_type"], sent["target"], sent["build_server"]) == ("qemu", "auto", "auto")
    assert sent["build"]["artifacts"] == [{"path": "arch/{arch}/boot/bzImage", "type": "kernel"}]
    assert [t["name"] for t in sent["tests"]] == ["uname", "ls-missing"]
    assert "commit" not in sent and "priority" not in sent
    assert outcome.stdout.startswith(f"pipeline 7 created: x86_64 main @ 0123456789ab of {REPO} on qemu")
    assert "".join(LOG) in outcome.stdout
    assert outcome.stdout.splitlines()[-1] == "pipeline 7 succeeded in 40s: 2 of 2 tests passed"
    assert "test ls-missing: PASS (exit 0)" in outcome.stderr


def test_ctrl_c_stops_following_and_says_how_to_resume(serve_stand_in: Any) -> None:
    stand_in = StandIn(
        script=[[FAILED_EVENTS[1], log(0), "hold"]],
        pipeline=pipeline(
            "running", [stage("build", "running", 0, **BUILD), *pending("deploy", "boot", "test")], []
        ),
    )
    url = serve_stand_in(stand_in)
    env = {
        **os.environ,
        "LABFLEET_URL": url,
        "LABFLEET_TOKEN": "lf_test",
        "LABFLEET_CLI_CONFIG": "/nonexistent",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "labfleet.cli.main", "pipelines", "follow", "7"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == LOG[0], first  # connected and following
        time.sleep(0.3)
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    said = flat(rest)
    assert "stopped following pipeline 7; the pipeline goes on" in said
    assert "labfleet pipelines follow 7" in said
    assert f"--offset {len(LOG[0].encode())}" in said
    assert "Traceback" not in rest


# -- environments


def environment(status: str, **extra: Any) -> dict[str, Any]:
    """An environment as the API shows it (EnvironmentOut)."""
    return {
        "id": 3, "url": "http://lab/api/v1/environments/3", "display": "environment 3", "kind": "qemu",
        "status": shown(EnvironmentStatus(status)), "owner": "alice", "team": None, "purpose": "debug",
        "architecture": "x86_64",
        "target": "auto", "host_id": 2, "host": "qemu1.lab", "board_id": None, "board": None,
        "reservation_id": 5, "pipeline_id": None, "build_job_id": 4, "artifacts": {"kernel": 12},
        "vcpus": 2, "memory_mb": 512, "domain_name": None, "console_url": None, "warnings": [],
        "failed_resources": [], "error": None, "steps": [], "created_at": T0, "ready_at": None,
        "expires_at": at(3600), "released_at": None, "release_reason": None, "decision": None, **extra,
    }  # fmt: skip


def test_envs_create_checks_which_build_then_waits_until_ready_or_failed(
    serve_stand_in: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("labfleet.cli.envs._WAIT_POLL_SECONDS", 0.01)
    stand_in = StandIn(script=[], pipeline={})
    url = serve_stand_in(stand_in)
    base = ("envs", "create", "--kind", "qemu", "--arch", "x86_64")

    for wrong, hint in [
        ((), "--build-id/--commit/--latest"),
        (("--build-id", "4", "--latest"), "--build-id/--commit/--latest"),
        (("--latest", "--repo", REPO), "--latest needs --repo and --branch"),
        (("--commit", "abcdef1", "--branch", "main"), "--branch goes with --latest"),
    ]:
        outcome = invoke(url, *base, *wrong)
        assert outcome.exit_code == 2 and hint in flat(outcome.output), outcome.output
    assert stand_in.requests == []

    warned = environment("pending", warnings=["host qemu1.lab is 92% committed in memory"])
    step = {"step": "deploy", "status": "done", "at": T0}
    ready = environment("ready", console_url="telnet://qemu1.lab:5001", domain_name="lf-env-3",
                        steps=[step, {"step": "boot", "status": "done", "at": T0}])  # fmt: skip
    stand_in.env_answers = [
        (201, warned),
        (200, environment("provisioning", steps=[step])),
        (200, ready),
    ]
    outcome = invoke(url, *base, "--build-id", "4", "--vcpus", "2", "--memory-mb", "512",
                     "--boot-pattern", "login:", "--wait")  # fmt: skip
    assert outcome.exit_code == 0, outcome.output
    assert stand_in.posted[-1] == {
        "kind": "qemu",
        "architecture": "x86_64",
        "artifacts": {"build_id": 4},
        "target": "auto",
        "requirements": {"vcpus": 2, "memory_mb": 512},
        "boot": {"pattern": "login:"},
    }
    said = flat(outcome.output)
    assert "environment 3 created: qemu x86_64 on host qemu1.lab — pending" in said
    assert "warning: host qemu1.lab is 92% committed in memory" in said
    assert "environment 3: provisioning step deploy: done environment 3: ready step boot: done" in said
    assert "environment 3 ready on host qemu1.lab: console telnet://qemu1.lab:5001; domain lf-env-3" in said

    stand_in.env_answers = [
        (201, environment("pending")),
        (200, environment("failed", error="no login: in 300 s")),
    ]
    outcome = invoke(url, *base, "--latest", "--repo", REPO, "--branch", "main", "--wait", "--json")
    assert outcome.exit_code == 1, outcome.output
    assert json.loads(outcome.stdout)["error"] == "no login: in 300 s"  # one JSON document: the end
    assert stand_in.posted[-1]["artifacts"] == {"latest": True, "repository_url": REPO, "branch": "main"}


def test_envs_create_shows_the_alternatives_when_nothing_can_take_it_now(serve_stand_in: Any) -> None:
    problem = {
        "type": "urn:labfleet:problem:conflict", "title": "Conflict", "status": 409,
        "detail": "no board of type rpi4 with usb-serial is free now",
        "alternatives": [
            {"id": 1, "name": "rpi-1", "available_now": False,
             "lacks": [{"code": "held", "message": "held by reservation #9 until 12:00"}]},
            {"id": 2, "name": "rpi-2", "available_now": False,
             "lacks": [{"code": "peripheral", "message": "no usb-serial"}]},
        ],
    }  # fmt: skip
    stand_in = StandIn(script=[], pipeline={}, env_answers=[(409, problem)])
    url = serve_stand_in(stand_in)
    outcome = invoke(url, "envs", "create", "--kind", "board", "--arch", "arm64", "--commit", "abcdef1",
                     "--board-type", "rpi4", "--peripheral", "usb-serial", "--explain")  # fmt: skip
    assert outcome.exit_code == 1
    said = flat(outcome.output)
    assert "error 409: no board of type rpi4 with usb-serial is free now" in said
    assert "rpi-1 (#1): lacks: held by reservation #9 until 12:00" in said
    assert "rpi-2 (#2): lacks: no usb-serial" in said
    assert stand_in.requests == ["POST /api/v1/environments explain=true"]
    assert stand_in.posted[-1]["requirements"] == {"board_type": "rpi4", "peripherals": ["usb-serial"]}
