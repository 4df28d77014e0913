"""Serial consoles served over TCP, as a console server does, and up across power cycles.

Each board has a pty pair held open by socat: QEMU attaches its serial port to one end
(``<board>.qemu``) when the board is powered on, and ser2net serves the other end
(``<board>.console``) all the time, so a console client stays connected while the
board is off and sees it boot when it comes back.
"""

from __future__ import annotations

import shutil

from labfleet.errors import LabfleetError
from labfleet.lab.layout import BOARDS, LOOPBACK, Board
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import Daemon, listening, run, running_pid, start_background, tail, wait_until


def socat(paths: LabPaths, board: Board) -> Daemon:
    return Daemon(
        f"socat ({board.name})",
        paths.runtime(f"{board.name}.socat.pid"),
        marker=str(paths.console_end(board)),
    )


def ser2net(paths: LabPaths) -> Daemon:
    return Daemon("ser2net", paths.runtime("ser2net.pid"), marker=str(paths.runtime("ser2net.yaml")))


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise LabfleetError(f"virtual lab: {name} is not installed; run scripts/setup --lab")
    return found


def pty_pair_up(paths: LabPaths, board: Board) -> bool:
    return (
        running_pid(socat(paths, board)) is not None
        and paths.console_end(board).exists()
        and paths.qemu_end(board).exists()
    )


def start_pty_pair(paths: LabPaths, board: Board, *, timeout: float = 10) -> bool:
    """The board's pty pair; whether it was started."""
    if pty_pair_up(paths, board):
        return False
    daemon = socat(paths, board)
    for end in (paths.console_end(board), paths.qemu_end(board)):
        end.unlink(missing_ok=True)
    log = paths.runtime(f"{board.name}.socat.log")
    pty = "pty,link={},raw,echo=0"
    start_background(
        daemon,
        [_program("socat"), "-d", pty.format(paths.console_end(board)), pty.format(paths.qemu_end(board))],
        log=log,
    )
    wait_until(lambda: pty_pair_up(paths, board), timeout=timeout, what=daemon.name, hint=lambda: tail(log))
    return True


def ser2net_config(paths: LabPaths) -> str:
    lines = [
        "%YAML 1.1",
        "---",
        "# labfleet virtual lab: board consoles (written by `labfleet lab up`).",
    ]
    for board in BOARDS:
        # nodelay: a console is interactive, every keystroke matters more than packet count.
        gensio = "telnet(rfc2217),tcp(nodelay)" if board.rfc2217 else "tcp(nodelay)"
        lines += [
            f"connection: &{board.name.replace('-', '_')}",
            f"  accepter: {gensio},{LOOPBACK},{board.console_port}",
            f"  connector: serialdev,{paths.console_end(board)},115200n81,local",
            "  options:",
            # A client that went away without closing must not lock the console forever.
            "    kickolduser: true",
            "    mdns: false",
        ]
    return "\n".join(lines) + "\n"


def ser2net_up(paths: LabPaths) -> bool:
    return running_pid(ser2net(paths)) is not None and all(listening(b.console_port) for b in BOARDS)


def start_ser2net(paths: LabPaths, *, timeout: float = 10) -> bool:
    """ser2net serving every board's console; whether it was started."""
    if ser2net_up(paths):
        return False
    daemon = ser2net(paths)
    conf = paths.runtime("ser2net.yaml")
    conf.write_text(ser2net_config(paths))
    daemon.pid_file.unlink(missing_ok=True)
    # -u: no UUCP lock files for the ptys. ser2net detaches by itself and logs to syslog (absent
    # here), and retries a port in use instead of exiting: the ports are what tells it is up.
    run([_program("ser2net"), "-u", "-c", conf, "-P", daemon.pid_file], what="ser2net")
    ports = ", ".join(str(b.console_port) for b in BOARDS)
    wait_until(
        lambda: ser2net_up(paths),
        timeout=timeout,
        what=f"ser2net on {LOOPBACK} ports {ports}",
        hint=lambda: f"is another program on those ports? `ser2net -d -c {conf}` shows why",
    )
    return True
