"""Log latency: a line printed by a build on its server, until a WebSocket client has it; p50 and p99.

    sudo .venv/bin/python -m benchmarks.build_logs [--lines 2000] [--interval-ms 5] [--width 100]
                                                   [--lead-ms 500] [--mode paced|burst|both]
                                                   [--database-url URL]

End to end through a real ``labfleet serve`` process (its own temporary data directory;
SQLite, or with ``--database-url postgresql://...`` a scratch database created on that
server and dropped afterwards) and the virtual lab's build server (``lab up`` first if the
lab is not up; it is left as it was found). The lab's build server is registered over the
API with device checks on, so its toolchains are probed as in production. Then, per mode,
one build of the lab's repository whose command prints ``--lines`` lines, each carrying
the time it was printed on the build server (perl's ``Time::HiRes::time``, stdout
flushed per line): one every ``--interval-ms`` (paced) or all at once (burst), after
``--lead-ms`` of silence.

The client submits the build, connects at once to ``/api/v1/events`` with
``topic=build-job:<id>&log_offset=0``, and notes when each line arrives (the message
holding its last byte). A line printed before the WebSocket was open would come from the
stored log, replayed, and is counted apart instead of measured. The lead-in is there
because labfleet writes its own first lines ("attempt 1 of build job ...") as soon as the
job is claimed, which can be before the client's subscription: the server then sends
what follows from the store once it is flushed (every 250 ms), not live, until it has
caught up. Lines in that first message (when the WebSocket opened after the job's
``started_at``) are counted as caught up, not measured; ``--lead-ms 0`` shows how often
that happens. The build server is this machine (sshd on loopback), so both timestamps
come from one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url
from websockets.asyncio.client import connect

from benchmarks.scratch import scratch_pg
from labfleet.config import normalize_database_url
from labfleet.lab import layout
from labfleet.lab.paths import LabPaths
from labfleet.lab.status import status
from labfleet.lab.up import down, up

LINE = re.compile(r"^bench-line (\d+) (\d+\.\d+) ")
# One write(2) per line ($| = 1), so what is measured is labfleet, not stdio buffering.
PRINTER = (
    "perl -MTime::HiRes=time,sleep -e '$| = 1; my ($n, $gap, $width, $lead) = @ARGV; sleep $lead; "
    'for my $i (1 .. $n) { my $s = sprintf("bench-line %d %.6f ", $i, time); '
    'print $s, "x" x ($width - 1 - length $s), "\\n"; sleep $gap if $gap > 0 }\''
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``labfleet serve`` in a process of its own, as an operator runs it (device checks on)."""

    def __init__(self, data_dir: Path, database_url: str | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "LABFLEET_DATA_DIR": str(data_dir), "LABFLEET_LOG_LEVEL": "warning"}
        if database_url:
            self.env["LABFLEET_DATABASE_URL"] = database_url
        self.log = data_dir / "serve.log"

    def __enter__(self) -> Server:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "labfleet.cli.main", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/api/v1/openapi.json", timeout=1)
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.__exit__()
        raise SystemExit("labfleet serve did not start:\n" + self.log.read_text())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def admin_token(self) -> str:
        """``labfleet token create --role admin``, on the server's database."""
        create = ["token", "create", "--name", "bench", "--role", "admin"]
        done = subprocess.run(
            [sys.executable, "-m", "labfleet.cli.main", *create],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]


@contextmanager
def database(url: str | None) -> Iterator[str | None]:
    """None for SQLite in the data directory; else a scratch database on ``url``'s server."""
    if not url:
        yield None
        return
    with scratch_pg(normalize_database_url(url)) as scratch:
        yield scratch


def add_database_option(parser: argparse.ArgumentParser) -> None:
    """``--database-url``, what :func:`database` is given."""
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (postgresql://user:pw@host/db) to make a scratch database on; "
        "SQLite when unset",
    )


@dataclass
class Run:
    mode: str
    submitted: float = 0.0
    started: float = 0.0  # the job's started_at: claimed by the worker, labfleet's first lines
    ws_open: float = 0.0
    ended: float = 0.0
    status: str = ""
    messages: int = 0
    most_lines: int = 0  # in one log message
    live: list[float] = field(default_factory=list)  # ms
    replayed: int = 0
    caught_up: int = 0  # in the first message, from the store, when the subscription was late
    printed: list[float] = field(default_factory=list)  # the build server's timestamps
    seen: list[int] = field(default_factory=list)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def register(client: httpx.AsyncClient, paths: LabPaths) -> dict[str, Any]:
    r = await client.post(
        "/api/v1/build-servers",
        json={
            "hostname": layout.BUILD_SERVER_NAME,
            "address": layout.LOOPBACK,
            "max_concurrent_builds": 2,
            "ssh": {
                "username": layout.BUILD_USER,
                "port": layout.SSH_PORT,
                "private_key": paths.private_key.read_text(),
            },
        },
        timeout=120,
    )
    if r.status_code != 201:
        raise SystemExit(f"registering the lab's build server: {r.status_code} {r.text[:500]}")
    server: dict[str, Any] = r.json()
    if not any(t["architecture"] == "x86_64" for t in server["toolchains"]):
        raise SystemExit(f"the lab's build server has no x86_64 toolchain: {server['toolchains']}")
    return server


async def run_build(
    client: httpx.AsyncClient, ws_base: str, token: str, mode: str, args: argparse.Namespace
) -> Run:
    run = Run(mode)
    lines = args.lines
    gap_s = args.interval_ms / 1000 if mode == "paced" else 0.0
    command = f"{PRINTER} {lines} {gap_s:g} {args.width} {args.lead_ms / 1000:g}"
    run.submitted = time.time()
    r = await client.post(
        "/api/v1/build-jobs",
        json={
            "repository_url": layout.REPO_URL,
            "branch": layout.REPO_BRANCH,
            "architecture": "x86_64",
            "command": command,
            "timeout_s": 600,
        },
    )
    if r.status_code != 201:
        raise SystemExit(f"submitting the build: {r.status_code} {r.text[:500]}")
    job_id = r.json()["id"]
    query = urllib.parse.urlencode({"topic": f"build-job:{job_id}", "log_offset": 0, "token": token})
    expected = 0
    pending = ""
    first: list[tuple[int, float, float]] = []  # the first log message's lines
    # max_size: a replay from the store may send up to 1 MiB of log in one message, escaped.
    async with connect(f"{ws_base}/api/v1/events?{query}", max_size=None, open_timeout=30) as ws:
        run.ws_open = time.time()
        async for raw in ws:
            received = time.time()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "end":
                run.ended, run.status = received, message["status"]
                break
            if kind in ("error", "lagged"):
                raise SystemExit(f"build job {job_id}: the event stream ended early: {message}")
            if kind != "log":
                continue
            run.messages += 1
            into = first if run.messages == 1 else None
            data = message["data"]
            if message["offset"] != expected:
                raise SystemExit(
                    f"build job {job_id}: log at offset {message['offset']}, expected {expected}"
                )
            expected += len(data.encode())
            pending += data
            *complete, pending = pending.split("\n")
            run.most_lines = max(run.most_lines, len(complete))
            for line in complete:
                found = LINE.match(line)
                if found is None:
                    continue
                number, printed = int(found.group(1)), float(found.group(2))
                if into is not None:
                    into.append((number, printed, received))
                else:
                    take(run, number, printed, received)
    r = await client.get(f"/api/v1/build-jobs/{job_id}")
    job = r.json()
    run.started = datetime.fromisoformat(job["started_at"]).timestamp()
    # Subscribed after labfleet wrote its first line: the first message came from the store.
    late = run.ws_open > run.started
    run.seen = [n for n, _, _ in first] + run.seen
    run.printed = [p for _, p, _ in first] + run.printed
    for number, printed, received in first:
        if late:
            run.caught_up += 1
        else:
            take(run, number, printed, received, keep=False)
    if run.seen != list(range(1, lines + 1)):
        missing = lines - len(set(run.seen))
        raise SystemExit(
            f"build job {job_id}: {len(run.seen)} lines received, {missing} missing, or out of order"
        )
    if run.status != "succeeded":
        raise SystemExit(f"build job {job_id} ended {run.status}: {job.get('failure_reason')}")
    return run


def take(run: Run, number: int, printed: float, received: float, *, keep: bool = True) -> None:
    if keep:
        run.seen.append(number)
        run.printed.append(printed)
    if printed < run.ws_open:
        run.replayed += 1
    else:
        run.live.append((received - printed) * 1000)


def report(run: Run, args: argparse.Namespace) -> None:
    pace = f"one every {args.interval_ms:g} ms" if run.mode == "paced" else "all at once"
    print(f"{run.mode} ({args.lines} lines of {args.width} bytes, {pace}, after {args.lead_ms:g} ms):")
    print(
        f"  lines measured       {len(run.live)} received live, {run.replayed} replayed "
        f"(printed before the WebSocket was open), {run.caught_up} caught up from the store"
    )
    print(f"  log messages         {run.messages}, at most {run.most_lines} lines in one")
    if run.live:
        print(
            f"  latency              p50 {percentile(run.live, 50):7.2f} ms  "
            f"p90 {percentile(run.live, 90):7.2f} ms  p99 {percentile(run.live, 99):7.2f} ms  "
            f"max {max(run.live):7.2f} ms  (mean {statistics.fmean(run.live):.2f} ms)"
        )
    first, last = run.printed[0], run.printed[-1]
    side = "after" if run.ws_open > run.started else "before"
    print(
        f"  job end to end       {run.ended - run.submitted:7.2f} s  (submit -> end message; "
        f"WebSocket open after {(run.ws_open - run.submitted) * 1000:.0f} ms, "
        f"{abs(run.ws_open - run.started) * 1000:.0f} ms {side} "
        f"the job started; first line printed "
        f"after {first - run.submitted:.2f} s, printing took {last - first:.2f} s, "
        f"end {run.ended - last:.2f} s after the last line)"
    )


async def measure(server: Server, paths: LabPaths, args: argparse.Namespace, backend: str) -> None:
    token = await asyncio.to_thread(server.admin_token)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        registered = await register(client, paths)
        chains = ", ".join(f"{t['architecture']} ({t['compiler']})" for t in registered["toolchains"])
        print(
            f"labfleet serve on {backend}; build server {registered['hostname']} "
            f"ssh://{layout.BUILD_USER}@{layout.LOOPBACK}:{layout.SSH_PORT}, "
            f"{registered['status']['value']}, toolchains {chains}; "
            f"repository {layout.REPO_URL} {layout.REPO_BRANCH}"
        )
        print(
            "clocks: the build server is this machine (sshd on loopback), so the printed and the "
            "received timestamps come from one clock (CLOCK_REALTIME)"
        )
        ws_base = server.url.replace("http://", "ws://", 1)
        modes = ("paced", "burst") if args.mode == "both" else (args.mode,)
        for mode in modes:
            report(await run_build(client, ws_base, token, mode, args), args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--interval-ms", type=float, default=5.0, help="between lines, paced mode")
    parser.add_argument("--width", type=int, default=100, help="bytes per line, newline included")
    parser.add_argument("--lead-ms", type=float, default=500.0, help="silence before the first line")
    parser.add_argument("--mode", choices=("paced", "burst", "both"), default="both")
    add_database_option(parser)
    args = parser.parse_args()
    if args.width < 40:
        parser.error("--width: at least 40 bytes, for the line's number and timestamp")

    paths = LabPaths.from_env()
    was_up = status(paths).up
    if not was_up:
        started = time.monotonic()
        up(paths)
        print(f"lab up: {time.monotonic() - started:.1f} s (it was not up; it is brought down afterwards)")
    try:
        with tempfile.TemporaryDirectory(prefix="labfleet-bench-") as tmp, database(args.database_url) as url:
            backend = "SQLite" if url is None else f"PostgreSQL ({make_url(url).database})"
            with Server(Path(tmp) / "data", url) as server:
                asyncio.run(measure(server, paths, args, backend))
    finally:
        if not was_up:
            down(paths)


if __name__ == "__main__":
    main()
