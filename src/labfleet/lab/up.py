"""``lab up`` and ``lab down``: start every part of the lab in an order that overlaps the slow ones.

libvirtd probes the QEMU binaries before it answers (some ten seconds the first time,
until its capabilities cache is filled) and the boards take a few seconds to boot under
TCG, so both are started early and waited for last. Both commands may be run again: a
part that already runs is left alone.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from labfleet.errors import LabfleetError
from labfleet.lab import boards, consoles, initramfs, libvirt, packages, pdu, repo, sshd
from labfleet.lab.layout import BOARDS, BUILD_USER, REPO_URL, Board
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import (
    processes_mentioning,
    processes_of_user,
    run,
    running_pid,
    stop,
    stop_pid,
    tail,
    wait_until,
)
from labfleet.lab.status import LabStatus, status

Report = Callable[[str], None]

# Programs of the lab: what `lab down` may stop even when its pid file is gone.
LAB_PROGRAMS = (
    "qemu-system-",
    "socat",
    "ser2net",
    "sshd",
    "libvirtd",
    "virtlogd",
    "pdudaemon",
    "git-daemon",
)


def _quiet(_: str) -> None:
    pass


def _require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise LabfleetError(f"virtual lab: `lab {command}` must run as root (it starts sshd and libvirtd)")


@contextmanager
def _locked(paths: LabPaths) -> Iterator[None]:
    """One `lab up` or `lab down` at a time on this state directory."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with (paths.state / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def booted(paths: LabPaths, board: Board) -> bool:
    """Whether the board's console shows its boot banner followed by a shell prompt, since power-on."""
    try:
        text = paths.console_log(board).read_text(errors="replace")
    except OSError:
        return False
    _, banner, after = text.partition(board.banner)
    return bool(banner) and "# " in after


def wait_booted(paths: LabPaths, board: Board, *, timeout: float) -> None:
    wait_until(
        lambda: booted(paths, board),
        timeout=timeout,
        what=f"{board.name}: boot to a shell",
        interval=0.2,
        hint=lambda: tail(paths.console_log(board)) + "\n" + tail(paths.power_log(board)),
    )


def _boot_images(paths: LabPaths, report: Report) -> None:
    busyboxes = {}
    for board in BOARDS:
        report(f"{board.name}: kernel and busybox ({board.deb_arch})")
        packages.fetch_kernel(paths, board)
        busybox = packages.fetch_busybox(paths, board)
        busyboxes[board.name] = busybox
        # A boot image already there may have been flashed: keep it while the lab stays up.
        if not paths.boot_image(board).exists():
            initramfs.build(paths.initramfs_tree, busybox, paths.boot_image(board))
    # What the build server needs to build the same images (and their kernels) from the lab's repository.
    repo.install_toolchain(paths, busyboxes)
    report(f"git repository {paths.repo}: main at {repo.publish(paths)}")


def _preflight(paths: LabPaths) -> None:
    """What would make `lab up` fail halfway, found before anything starts."""
    _require_root("up")
    packages.require_packages()
    initramfs.require_tree(paths.initramfs_tree)
    repo.require_source(paths)
    pdu.program()


def up(paths: LabPaths, *, report: Report = _quiet, timeout: float = 120) -> LabStatus:
    """Start the whole lab (the boards powered on through the PDU) and return its status.

    A part that fails to start leaves those started before it running, for `lab status`
    and the logs in the state directory to tell why; `lab down` stops them.
    """
    _preflight(paths)
    with _locked(paths):
        paths.state.chmod(0o755)
        for board in BOARDS:
            paths.board_dir(board).mkdir(exist_ok=True)
        if libvirt.start(paths):
            report("libvirtd: started; it answers once it has probed QEMU")
        _boot_images(paths, report)
        if sshd.start(paths):
            report("sshd: started")
        if repo.start(paths):
            report(f"git daemon: started, serving {REPO_URL}")
        for board in BOARDS:
            consoles.start_pty_pair(paths, board)
        if consoles.start_ser2net(paths):
            report("ser2net: started")
        if pdu.start(paths):
            report("pdudaemon: started")
        for board in BOARDS:
            if not boards.is_on(paths, board):
                report(f"{board.name}: power on through pdudaemon, outlet {board.outlet}")
                pdu.request("on", board.outlet)
        for board in BOARDS:
            wait_booted(paths, board, timeout=timeout)
            report(f"{board.name}: booted")
        libvirt.wait_ready(paths, timeout=timeout)
        report("libvirtd: answers on qemu:///system")
        if not libvirt.answers(libvirt.ssh_uri(paths), timeout=30):
            raise LabfleetError(f"libvirtd: does not answer over SSH at {libvirt.ssh_uri(paths)}")
        report("libvirtd: answers over qemu+ssh")
        current = status(paths)
        if not current.up:
            down_parts = ", ".join(p.name for p in current.parts if not p.running)
            raise LabfleetError(f"virtual lab: not everything came up: {down_parts}")
        return current


def _destroy_domains(report: Report) -> None:
    """Guests that tests started through the lab's libvirtd go down with it."""
    try:
        names = run(["virsh", "--connect", "qemu:///system", "list", "--name"], what="libvirtd", timeout=15)
    except LabfleetError:
        return
    for name in names.split():
        report(f"libvirtd: destroying guest {name}")
        run(
            ["virsh", "--connect", "qemu:///system", "destroy", name],
            what=f"libvirt guest {name}",
            timeout=30,
        )


def _stop_strays(paths: LabPaths, report: Report) -> None:
    """Processes of the lab whose pid file was lost, and whatever the build user left running."""
    strays = [
        (pid, cmdline)
        for pid, cmdline in processes_mentioning(str(paths.state))
        if any(program in cmdline for program in LAB_PROGRAMS)
    ]
    with suppress(KeyError):
        strays += processes_of_user(pwd.getpwnam(BUILD_USER).pw_uid)
    for pid, cmdline in strays:
        report(f"stopping stray process {pid}: {cmdline[:100]}")
        stop_pid(pid, f"stray lab process {pid}", grace=5)


def _remove_runtime_files(paths: LabPaths) -> None:
    """Everything in the state directory but the keys (and the lock, held right now)."""
    for entry in paths.state.iterdir():
        if entry == paths.keys or entry.name == ".lock":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def down(paths: LabPaths, *, report: Report = _quiet) -> list[str]:
    """Stop every process of the lab and remove its runtime files; the names of what was running."""
    _require_root("down")
    if not paths.state.exists():
        return []
    stopped: list[str] = []
    with _locked(paths):
        for board in BOARDS:
            # Straight to QEMU: pdudaemon may be gone already.
            if boards.power_off(paths, board):
                stopped.append(board.name)
        if running_pid(libvirt.libvirtd(paths)) is not None:
            _destroy_domains(report)
        daemons = [
            pdu.daemon(paths),
            consoles.ser2net(paths),
            *(consoles.socat(paths, b) for b in BOARDS),
            repo.daemon(paths),
            sshd.daemon(paths),
            libvirt.libvirtd(paths),
            libvirt.virtlogd(paths),
        ]
        for daemon in daemons:
            # libvirtd saves its state on the way out; give it time.
            if stop(daemon, grace=15 if daemon.name == "libvirtd" else 5):
                stopped.append(daemon.name)
                report(f"{daemon.name}: stopped")
        _stop_strays(paths, report)
        libvirt.remove_cgroup()
        _remove_runtime_files(paths)
    return stopped
