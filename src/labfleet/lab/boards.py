"""The boards: QEMU machines (TCG only) booting a Debian kernel and the board's boot image.

Powering a board on starts its QEMU (detached, with a pid file); powering it off stops
it. Its power state is whether that QEMU runs, which is how the lab reads back power
through a PDU driver (pdudaemon's localcmdline) that cannot report it.
"""

from __future__ import annotations

import shutil

from labfleet.errors import DeviceError, LabfleetError
from labfleet.lab.layout import Board
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, run, running_pid, stop

MEMORY_MB = 256


def qemu_daemon(paths: LabPaths, board: Board) -> Daemon:
    pid_file = paths.qemu_pid(board)
    return Daemon(f"QEMU ({board.name})", pid_file, marker=str(pid_file))


def qemu_argv(paths: LabPaths, board: Board) -> list[str]:
    """The QEMU command line that powers the board on. Nothing in it asks for KVM."""
    chardev = (
        f"serial,id=console,path={paths.qemu_end(board)},logfile={paths.console_log(board)},logappend=off"
    )
    return [
        board.qemu,
        "-accel",
        "tcg",
        *board.machine,
        "-m",
        str(MEMORY_MB),
        "-smp",
        "1",
        "-name",
        board.name,
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-chardev",
        chardev,
        "-serial",
        "chardev:console",
        "-kernel",
        str(paths.kernel(board)),
        "-initrd",
        str(paths.boot_image(board)),
        # Unknown name=value parameters reach init as environment variables: labfleet_board.
        "-append",
        f"console={board.console_device} quiet panic=-1 labfleet_board={board.name}",
        # A guest that reboots or panics powers off, as the lab's status then shows.
        "-no-reboot",
        "-daemonize",
        "-pidfile",
        str(paths.qemu_pid(board)),
    ]


def is_on(paths: LabPaths, board: Board) -> bool:
    return running_pid(qemu_daemon(paths, board)) is not None


def power_on(paths: LabPaths, board: Board) -> bool:
    """Start the board's QEMU unless it runs; whether it was started."""
    if is_on(paths, board):
        return False
    if not paths.qemu_end(board).exists():
        raise DeviceError(f"{board.name}: its console pty {paths.qemu_end(board)} is missing; is the lab up?")
    for needed in (paths.kernel(board), paths.boot_image(board)):
        if not needed.exists():
            raise DeviceError(f"{board.name}: {needed} is missing; run `labfleet lab up`")
    if shutil.which(board.qemu) is None:
        raise LabfleetError(f"virtual lab: {board.qemu} is not installed; run scripts/setup --lab")
    paths.qemu_pid(board).unlink(missing_ok=True)
    # -daemonize returns once the machine is set up, so a bad option or file fails here.
    run(qemu_argv(paths, board), what=f"{board.name} (QEMU)", timeout=60)
    return True


def power_off(paths: LabPaths, board: Board) -> bool:
    """Stop the board's QEMU; whether it was running."""
    return stop(qemu_daemon(paths, board), grace=5)
