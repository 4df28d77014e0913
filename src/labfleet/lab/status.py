"""What of the lab runs: each daemon by its pid file (and port), each board by its QEMU."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from labfleet.lab import boards, consoles, libvirt, pdu, repo, sshd
from labfleet.lab.layout import (
    BOARDS,
    GIT_PORT,
    LOCAL_LIBVIRT_URI,
    LOOPBACK,
    PDU_NAME,
    PDU_PORT,
    PDU_URL,
    REPO_BRANCH,
    REPO_URL,
    SSH_PORT,
)
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, listening, running_pid


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    kind: str  # daemon | repository | board
    running: bool  # for a board: powered on
    pid: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class LabStatus:
    parts: tuple[Part, ...]

    @property
    def up(self) -> bool:
        """Every daemon runs and every board is on."""
        return all(p.running for p in self.parts)

    @property
    def anything_running(self) -> bool:
        return any(p.running for p in self.parts)

    def part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def as_json(self) -> dict[str, Any]:
        return {"up": self.up, "parts": [asdict(p) for p in self.parts]}


def _daemon(daemon: Daemon, detail: str, *ports: int) -> Part:
    pid = running_pid(daemon)
    running = pid is not None and all(listening(port) for port in ports)
    return Part(daemon.name, "daemon", running, pid, detail)


def _repository(paths: LabPaths) -> Part:
    """The lab's git repository: up when git daemon serves it and ``main`` has a commit."""
    served = _daemon(repo.daemon(paths), REPO_URL, GIT_PORT)
    head = paths.repo / "refs" / "heads" / REPO_BRANCH
    try:
        commit = head.read_text().strip()
    except OSError:
        commit = ""
    detail = f"{REPO_URL} {REPO_BRANCH} {commit[:12] or '(none)'}, also {repo.ssh_url(paths)}"
    return Part(served.name, "repository", served.running and bool(commit), served.pid, detail)


def status(paths: LabPaths) -> LabStatus:
    parts = [
        _daemon(sshd.daemon(paths), f"build server ssh://{LOOPBACK}:{SSH_PORT}", SSH_PORT),
        _daemon(libvirt.virtlogd(paths), "libvirt's log daemon"),
        _daemon(libvirt.libvirtd(paths), f"QEMU host {LOCAL_LIBVIRT_URI}"),
    ]
    parts += [
        _daemon(consoles.socat(paths, b), f"pty pair {b.name}.console <-> {b.name}.qemu in {paths.state}")
        for b in BOARDS
    ]
    parts.append(
        _daemon(
            consoles.ser2net(paths),
            ", ".join(b.console_url for b in BOARDS),
            *(b.console_port for b in BOARDS),
        )
    )
    parts.append(_daemon(pdu.daemon(paths), f"{PDU_URL} PDU {PDU_NAME}", PDU_PORT))
    parts.append(_repository(paths))
    for board in BOARDS:
        daemon = boards.qemu_daemon(paths, board)
        pid = running_pid(daemon)
        parts.append(
            Part(
                board.name,
                "board",
                pid is not None,
                pid,
                f"{board.board_type}, outlet {board.outlet}, console {board.console_url}",
            )
        )
    return LabStatus(tuple(parts))
