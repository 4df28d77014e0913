"""Pipelines on the virtual lab: labfleet's overhead against the same work by hand, then N at once.

    .venv/bin/python -m benchmarks.pipelines [--runs 3] [--count 20] [--skip-parallel]
                                             [--no-ssh-mux] [--database-url URL]

A ``labfleet serve`` of its own (a free port, a temporary data directory; SQLite, or with
``--database-url postgresql://...`` a scratch database made on that server and dropped
afterwards) with the lab's build server and QEMU host registered through the API (device
checks on). The lab's boards are not registered: qemu pipelines do not use them, and this
server's board health checks would power-cycle them, a load the measurement does not want.

1. Orchestration overhead, x86_64 on the QEMU host: ``--runs`` pipelines one after
   another, each timed from its submission until the client sees its final status (polled
   every 0.2 s), interleaved with the same work done by hand with plain commands: a fresh
   ``git clone`` and ``make ARCH=x86_64`` over ``ssh`` on the build server, the kernel and
   initramfs ``scp``-ed here and checked (SHA-256), then ``scp``-ed to a directory on the
   host and checked there, a domain defined from the XML labfleet generates and started
   paused with ``virsh``, its TCP serial console opened (a socket) before it is resumed,
   the boot pattern awaited, the three test commands typed with exit-status markers, then
   the domain destroyed and undefined and every file removed. ``ssh`` and ``scp`` go over
   one master connection per user kept for the whole part (labfleet keeps its SSH
   connections in a pool too); ``--no-ssh-mux``: a new connection for each (about 0.4 s
   each on the lab, seven of them per run). The target is
   median(pipeline) / median(manual) <= 1.15. (The pipeline's build server keeps a bare
   mirror of the repository and fetches into it; by hand every run clones afresh.)
2. ``--count`` pipelines submitted at once (unless ``--skip-parallel``): the wall time until
   all ended, each one's status, and, from the environments and reservations the server
   recorded, that the host's vCPUs and memory were never held beyond its capacity at any
   instant, the most held at once, that every reservation was released, how much of the
   host's vCPU time was held while they ran, and why pipelines waited (their logs).

The columns: a pipeline's stages as the server timed them, ``wait`` the part of its deploy
stage spent waiting for a host, ``server`` its finished_at - created_at; by hand, ``build``
is clone + make, ``deploy`` the copies and checks.

Another labfleet with its own database on the same lab picks its VMs' console ports as this
one does (from 24100, free in its own database): run this when
``virsh -c qemu:///system list --all`` shows no ``labfleet-env-*`` domain.
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import re
import secrets
import shlex
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from benchmarks.build_logs import Server, add_database_option, database, free_port
from labfleet.lab import layout
from labfleet.lab.paths import LabPaths
from labfleet.lab.register import build_server_body, host_body
from labfleet.schemas.enums import PipelineStatus

ARCH = "x86_64"
BOOT_PATTERN = r"labfleet-lab: .* booted"
BOOT_TIMEOUT_S = 240
CMDLINE = "quiet panic=-1 labfleet_board=vm"  # labfleet adds console=ttyS0 in front
ARTIFACTS = (f"out/{ARCH}/kernel", f"out/{ARCH}/initramfs.cpio.gz")
TESTS = (
    ("arch", f'test "$(uname -m)" = {ARCH}'),
    ("hello", f"labfleet-hello | grep 'built for {ARCH}'"),
    ("proc", "test -r /proc/cmdline && cat /proc/cmdline"),
)
FINAL = (PipelineStatus.succeeded, PipelineStatus.failed, PipelineStatus.cancelled)
VIRSH = ("virsh", "-q", "-c", layout.LOCAL_LIBVIRT_URI)
HOST_DIR = "/var/lib/libvirt/images"


def pipeline_body() -> dict[str, Any]:
    return {
        "repository_url": layout.REPO_URL,
        "branch": layout.REPO_BRANCH,
        "architecture": ARCH,
        "environment_type": "qemu",
        "target": "auto",
        "build": {
            "command": "make",
            "artifacts": [
                {"path": ARTIFACTS[0], "type": "kernel"},
                {"path": ARTIFACTS[1], "type": "initramfs"},
            ],
        },
        "boot": {"pattern": BOOT_PATTERN, "timeout_s": BOOT_TIMEOUT_S, "cmdline": CMDLINE},
        "tests": [{"name": name, "command": command} for name, command in TESTS],
    }


def when(value: str | None) -> float | None:
    return None if value is None else datetime.fromisoformat(value).timestamp()


# -- the pipeline path: what a user gets


@dataclass
class Timed:
    kind: str
    wall: float = 0.0
    status: str = "succeeded"
    steps: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    ident: int | None = None


def run_pipeline(client: httpx.Client, poll_s: float, start: threading.Barrier | None = None) -> Timed:
    body = pipeline_body()
    if start is not None:
        start.wait()
    t0 = time.monotonic()
    r = client.post("/api/v1/pipelines", json=body)
    if r.status_code != 201:
        return Timed("pipeline", time.monotonic() - t0, "refused", error=f"{r.status_code} {r.text[:300]}")
    ident = r.json()["id"]
    while True:
        p = client.get(f"/api/v1/pipelines/{ident}").json()
        if p["status"]["value"] in FINAL:
            break
        time.sleep(poll_s)
    run = Timed("pipeline", time.monotonic() - t0, p["status"]["value"], error=p["error"], ident=ident)
    stages = {stage["name"]: stage for stage in p["stages"]}
    run.steps = {name: stage["duration_s"] or 0.0 for name, stage in stages.items()}
    deploy = when(stages["deploy"]["started_at"])
    if p["environment_id"] is not None and deploy is not None:  # deploy waits for a host first
        env = client.get(f"/api/v1/environments/{p['environment_id']}").json()
        run.steps["wait"] = (when(env["created_at"]) or deploy) - deploy
    run.steps["server"] = (when(p["finished_at"]) or 0.0) - (when(p["created_at"]) or 0.0)
    return run


# -- the manual path: the same work with plain commands


class Console:
    """A VM's TCP serial console, read into a buffer and searched."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((layout.LOOPBACK, port), timeout=20)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def close(self) -> None:
        self.sock.close()

    def expect(self, pattern: str, timeout: float) -> tuple[re.Match[str], str]:
        """The first match of ``pattern`` and what came before it; both are consumed."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while (found := regex.search(self.text)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"console: no {pattern!r} within {timeout:g} s: {self.text[-300:]!r}")
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("console closed")
            self.text += self.decoder.decode(data)
        before, self.text = self.text[: found.start()], self.text[found.end() :]
        return found, before

    def run(self, command: str, timeout: float = 60) -> tuple[str, int]:
        """The command's output and exit status; the quotes keep the echoed line from matching."""
        token = secrets.token_hex(6)
        self.sock.sendall(f'echo __B""{token}__; {command}; echo __E""{token}_$?__\n'.encode())
        self.expect(rf"__B{token}__\r*\n", timeout)
        done, output = self.expect(rf"__E{token}_(\d+)__", timeout)
        return output, int(done.group(1))


@dataclass(frozen=True)
class Ssh:
    """``ssh`` and ``scp`` to a user on the lab's sshd; over one master connection when ``control``."""

    user: str
    key: Path
    known_hosts: Path
    control: Path | None = None

    def options(self, port_flag: str) -> list[str]:
        mux = ["-o", f"ControlPath={self.control}"] if self.control else []
        return [
            "-i", str(self.key), port_flag, str(layout.SSH_PORT), "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes", *mux,
        ]  # fmt: skip

    @property
    def target(self) -> str:
        return f"{self.user}@{layout.LOOPBACK}"

    def run(self, script: str) -> str:
        return sh("ssh", *self.options("-p"), self.target, script)

    def remote(self, path: str) -> str:
        return f"{self.target}:{path}"

    def scp(self, *paths: str) -> None:
        sh("scp", "-q", *self.options("-P"), *paths)


@contextmanager
def lab_ssh(paths: LabPaths, *, mux: bool) -> Iterator[tuple[Ssh, Ssh]]:
    """The build server's user and the host's root; with ``mux``, each over a master connection
    kept for the whole measurement, as labfleet keeps its SSH connections in a pool."""
    with tempfile.TemporaryDirectory(prefix="labfleet-bench-ssh-") as tmp:
        users = (layout.BUILD_USER, "root")
        build, host = (
            Ssh(u, paths.private_key, paths.known_hosts, Path(tmp) / u if mux else None) for u in users
        )
        opened: list[Ssh] = []
        try:
            for ssh in (build, host):
                if ssh.control:  # -f keeps its stdio: no pipes, or reading them would never end
                    argv = ["ssh", "-f", "-N", "-M", *ssh.options("-p"), ssh.target]
                    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
                    opened.append(ssh)
            yield build, host
        finally:
            for ssh in opened:
                exit_master = ["ssh", "-O", "exit", *ssh.options("-p"), ssh.target]
                subprocess.run(exit_master, capture_output=True, check=False)


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)[:200]}: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    return done.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(listing: str) -> dict[str, str]:
    """``sha256sum`` output -> {file name: digest}."""
    return {Path(name).name: digest for digest, name in (line.split() for line in listing.splitlines())}


DOMAIN_XML = """\
<domain type="qemu"><name>{name}</name><memory unit="MiB">256</memory><vcpu>1</vcpu>
<os><type arch="x86_64" machine="pc">hvm</type><kernel>{kernel}</kernel><initrd>{initrd}</initrd>
<cmdline>console=ttyS0 {cmdline}</cmdline></os>
<cpu mode="custom" match="exact"><model fallback="allow">qemu64</model></cpu>
<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
<devices><serial type="tcp"><source mode="bind" host="127.0.0.1" service="{port}"/>
<protocol type="raw"/><target port="0"/></serial><memballoon model="none"/></devices></domain>
"""


def run_manual(build: Ssh, host: Ssh) -> Timed:
    """Build, copy, deploy, boot, test and tear down by hand; each step timed."""
    tag = secrets.token_hex(4)
    domain, host_dir = f"labfleet-bench-manual-{tag}", f"{HOST_DIR}/labfleet-bench-manual-{tag}"
    run = Timed("manual")
    t0 = time.monotonic()
    mark = t0

    def step(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        run.steps[name] = now - mark
        mark = now

    console: Console | None = None
    defined = False
    try:
        with tempfile.TemporaryDirectory(prefix="labfleet-bench-manual-") as tmp:
            workspace = build.run(
                'set -e; ws=$(mktemp -d "$HOME/labfleet-bench-XXXXXX"); '
                'trap \'[ $? = 0 ] || rm -rf "$ws"\' EXIT; cd "$ws"; '
                f"git clone --quiet --branch {layout.REPO_BRANCH} {layout.REPO_URL} src >&2; cd src; "
                f'make ARCH={ARCH} >&2; sha256sum {" ".join(ARTIFACTS)}; echo "$ws"'
            ).splitlines()
            built, ws = digests("\n".join(workspace[:-1])), workspace[-1]
            step("build")
            build.scp(*(build.remote(f"{ws}/src/{a}") for a in ARTIFACTS), tmp)
            build.run(f"rm -rf -- {shlex.quote(ws)}")
            local = {name: sha256(Path(tmp) / name) for name in built}
            if local != built:
                raise RuntimeError(f"copied from the build server: {local} != {built}")
            host.run(f"mkdir -p {host_dir}")
            host.scp(*(str(Path(tmp) / name) for name in built), host.remote(host_dir))
            placed = digests(host.run(f"cd {host_dir} && sha256sum {' '.join(built)}"))
            if placed != built:
                raise RuntimeError(f"copied to the host: {placed} != {built}")
            step("deploy")
        port = free_port()
        xml = DOMAIN_XML.format(
            name=domain,
            kernel=f"{host_dir}/kernel",
            initrd=f"{host_dir}/initramfs.cpio.gz",
            cmdline=CMDLINE,
            port=port,
        )
        with tempfile.NamedTemporaryFile("w", suffix=".xml") as f:
            f.write(xml)
            f.flush()
            sh(*VIRSH, "define", f.name)
        defined = True
        sh(*VIRSH, "start", "--paused", domain)
        console = Console(port)
        sh(*VIRSH, "resume", domain)
        console.expect(BOOT_PATTERN, BOOT_TIMEOUT_S)
        step("boot")
        for name, command in TESTS:
            output, status = console.run(command)
            if status != 0:
                raise RuntimeError(f"test {name}: exit status {status}: {output[-300:]!r}")
        step("test")
    except Exception as exc:  # reported with the run
        run.status, run.error = "failed", str(exc)
    finally:
        if console is not None:
            console.close()
        if defined:  # destroy fails on a domain that stopped by itself: undefine says if it is left
            subprocess.run([*VIRSH, "destroy", domain], capture_output=True, check=False)
            sh(*VIRSH, "undefine", domain)
        host.run(f"rm -rf -- {host_dir}")
        step("teardown")
    run.wall = time.monotonic() - t0
    return run


# -- the server and the lab


@contextmanager
def serve(database_url: str | None) -> Iterator[tuple[httpx.Client, str]]:
    with tempfile.TemporaryDirectory(prefix="labfleet-bench-") as tmp, database(database_url) as url:
        backend = "SQLite" if url is None else f"PostgreSQL ({make_url(url).database})"
        with Server(Path(tmp) / "data", url) as server:
            headers = {"Authorization": f"Bearer {server.admin_token()}"}
            limits = httpx.Limits(max_connections=64)
            with httpx.Client(base_url=server.url, headers=headers, timeout=60, limits=limits) as client:
                yield client, f"labfleet serve on {server.url}, {backend}"


def register(client: httpx.Client, paths: LabPaths) -> dict[str, Any]:
    for collection, body in (("build-servers", build_server_body(paths)), ("hosts", host_body(paths))):
        r = client.post(f"/api/v1/{collection}", json=body, timeout=120)
        if r.status_code != 201:
            raise SystemExit(f"registering {collection}: {r.status_code} {r.text[:500]}")
    host: dict[str, Any] = r.json()
    return host


def lab_domains() -> list[str]:
    names = sh(*VIRSH, "list", "--all", "--name").split()
    return [n for n in names if n.startswith(("labfleet-env-", "labfleet-bench-"))]


# -- reports


def median(runs: list[Timed], key: Callable[[Timed], float]) -> float:
    return statistics.median(key(r) for r in runs)


def table(runs: list[Timed]) -> None:
    cols = ("build", "wait", "deploy", "boot", "test", "teardown", "server")
    print(f"  {'run':<12} {'wall s':>7}  " + " ".join(f"{c:>8}" for c in cols) + "  status")
    for i, r in enumerate(runs, 1):
        cells = " ".join(f"{r.steps[c]:8.2f}" if c in r.steps else f"{'':>8}" for c in cols)
        name = f"{r.kind} {i}" if r.ident is None else f"{r.kind} #{r.ident}"
        print(f"  {name:<12} {r.wall:7.2f}  {cells}  {r.status}" + (f": {r.error}" if r.error else ""))


def overhead(client: httpx.Client, paths: LabPaths, runs: int, *, mux: bool) -> None:
    how = "one master connection per user (ControlMaster)" if mux else "a new connection per command"
    print(f"\n1. orchestration overhead: {runs} pipelines and {runs} manual runs, interleaved")
    print(f"  manual: ssh/scp over {how}")
    manual: list[Timed] = []
    piped: list[Timed] = []
    with lab_ssh(paths, mux=mux) as (build, host):
        for _ in range(runs):
            manual.append(run_manual(build, host))
            piped.append(run_pipeline(client, poll_s=0.2))
    table([r for pair in zip(manual, piped, strict=True) for r in pair])
    print("  (wait: the part of deploy spent waiting for a host; server: finished_at - created_at)")
    if any(r.status != "succeeded" for r in manual + piped):
        print("  some runs failed: no ratio")
        return
    m, p = median(manual, lambda r: r.wall), median(piped, lambda r: r.wall)
    ratio = p / m
    verdict = "met" if ratio <= 1.15 else "NOT met"
    print(f"  median manual {m:.2f} s, pipeline {p:.2f} s: ratio {ratio:.3f}x (target <= 1.15x: {verdict})")


def sweep(intervals: list[tuple[float, float, int, int]]) -> tuple[int, int, int]:
    """The most held at once of (intervals, vCPUs, MiB); a release at the same instant goes first."""
    events = sorted(
        [(start, 1, v, m) for start, _, v, m in intervals]
        + [(end, -1, -v, -m) for _, end, v, m in intervals],
        key=lambda e: (e[0], e[1]),
    )
    count = vcpus = memory = 0
    most = [0, 0, 0]
    for _, step, v, m in events:
        count, vcpus, memory = count + step, vcpus + v, memory + m
        most = [max(most[0], count), max(most[1], vcpus), max(most[2], memory)]
    return most[0], most[1], most[2]


def parallel(client: httpx.Client, host: dict[str, Any], count: int) -> None:
    print(f"\n2. {count} pipelines submitted at once")
    start = threading.Barrier(count)
    t0, began = time.monotonic(), time.time()
    with ThreadPoolExecutor(count) as pool:
        runs = list(pool.map(lambda _: run_pipeline(client, poll_s=1.0, start=start), range(count)))
    total = time.monotonic() - t0
    table(sorted(runs, key=lambda r: r.ident or 0))
    ok = sum(r.status == "succeeded" for r in runs)
    print(f"  all ended in {total:.1f} s; {ok} of {count} succeeded" + ("" if ok < count else " (all)"))

    host = client.get(f"/api/v1/hosts/{host['id']}").json()
    cores, memory = host["cpu_cores"], host["memory_mb"]
    reservations = client.get(
        "/api/v1/reservations", params={"active": "false", "host_id": host["id"], "limit": 1000}
    ).json()["items"]
    envs = client.get("/api/v1/environments", params={"limit": 1000}).json()["items"]
    still = [r["id"] for r in reservations if r["active"] or r["released_at"] is None]
    now = time.time()
    held = [
        (when(r["created_at"]) or 0.0, when(r["released_at"]) or now, r["vcpus"], r["memory_mb"])
        for r in reservations
    ]
    booted = [
        (when(e["ready_at"]) or 0.0, when(e["released_at"]) or now, e["vcpus"], e["memory_mb"])
        for e in envs
        if e["ready_at"] is not None and e["host_id"] == host["id"]
    ]
    by_id = {r["id"]: r for r in reservations}
    mismatched = [
        e["id"]
        for e in envs
        if e["host_id"] == host["id"]
        and (
            e["reservation_id"] not in by_id
            or (by_id[e["reservation_id"]]["vcpus"], by_id[e["reservation_id"]]["memory_mb"])
            != (e["vcpus"], e["memory_mb"])
        )
    ]
    n, vcpus, mib = sweep(held)
    vms = sweep(booted)[0]
    # vCPU-seconds held by this part's reservations over what the host had while it ran.
    used = sum((end - begin) * v for begin, end, v, _ in held if begin >= began)
    occupancy = used / (cores * total)
    fits = vcpus <= cores and mib <= memory
    print(
        f"  host {host['hostname']}: {cores} vCPUs, {memory} MiB; {len(reservations)} reservations, "
        f"{len(envs)} environments (whole run)"
    )
    print(
        f"  most held at once: {n} reservations, {vcpus} vCPUs, {mib} MiB -> "
        f"{'within capacity' if fits else 'DOUBLE-BOOKED: beyond capacity'}; most VMs booted at once: {vms}"
    )
    print(f"  host vCPUs held during this part: {occupancy:.0%} of {cores} x {total:.1f} s")
    print(
        f"  released at the end: {'all' if not still else f'NOT all, still active: {still}'}; "
        f"environments without their reservation or with another shape: {mismatched or 'none'}"
    )
    for r in runs:
        if r.status != "succeeded":
            print(f"  pipeline #{r.ident} {r.status}: {r.error}")
    # Why they waited: the worker logs the reason each time it changes.
    reasons: Counter[str] = Counter()
    for r in runs:
        if r.ident is not None:
            log = client.get(f"/api/v1/pipelines/{r.ident}/logs", params={"limit": 1024 * 1024}).json()
            reasons.update(
                re.sub(r"\d+(\.\d+)?", "N", line.split("waiting for a ", 1)[1])
                for line in log["data"].splitlines()
                if "waiting for a " in line
            )
    for reason, times in reasons.most_common():
        print(f"  waited {times:3d} x: {reason[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="pipelines and manual runs, part 1")
    parser.add_argument("--count", type=int, default=20, help="pipelines at once, part 2")
    parser.add_argument("--skip-parallel", action="store_true")
    parser.add_argument(
        "--no-ssh-mux",
        action="store_true",
        help="manual path: a new SSH connection for each ssh and scp (by default one master per user)",
    )
    add_database_option(parser)
    args = parser.parse_args()
    paths = LabPaths.from_env()
    if others := lab_domains():
        print(f"warning: domains on the lab's host already: {', '.join(others)}")
    with serve(args.database_url) as (client, what):
        host = register(client, paths)
        print(
            f"{what}; build server {layout.BUILD_SERVER_NAME} and host {host['hostname']} "
            f"({host['cpu_cores']} vCPUs, {host['memory_mb']} MiB) registered; {layout.REPO_URL} "
            f"{layout.REPO_BRANCH}, make ARCH={ARCH}; boot {BOOT_PATTERN!r}; {len(TESTS)} tests"
        )
        if args.runs:
            overhead(client, paths, args.runs, mux=not args.no_ssh_mux)
        if not args.skip_parallel:
            parallel(client, host, args.count)
    left = lab_domains()
    print(f"\ndomains left on the host: {', '.join(left) if left else 'none'}")


if __name__ == "__main__":
    main()
