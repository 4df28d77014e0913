"""Real console peers, started in a temporary directory and stopped afterwards.

- ``socat_shell``: socat listening on a loopback port; each connection gets /bin/sh on a
  fresh pty (echo on, like a board's getty) — what ``socket://`` reaches on QEMU.
- ``pty_shell``: a pty pair whose far end runs /bin/sh (socat) — a device path.
- ``ser2net_shell``: the same pty's near end served by ser2net 4 as telnet with RFC 2217
  on a loopback port — what ``rfc2217://`` reaches.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.helpers import free_port

SHELL = "EXEC:/bin/sh,pty,stderr,setsid,sigint,sane,ctty"


def wait_until(
    ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 10.0
) -> None:
    """Polls ``ready()`` (tests only: a daemon has no other way to say it is up)."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')}")
        if ready():
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not come up within {timeout} s: {log.read_text(errors='replace')}")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops a daemon this module started, and what it forked, by its process group."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextmanager
def socat_shell(workdir: Path) -> Iterator[int]:
    """A shell per connection on a loopback TCP port; yields the port."""
    port = free_port()
    log = workdir / "socat-shell.log"
    proc = start(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", SHELL], log)
    try:
        wait_until(lambda: listening(port), "socat", proc, log)
        yield port
    finally:
        stop(proc)


@contextmanager
def pty_shell(workdir: Path) -> Iterator[Path]:
    """A pty pair whose far end runs /bin/sh; yields the near end's path (a board's UART, as it were)."""
    tty = workdir / "ttyBOARD"
    log = workdir / "socat-pty.log"
    pty = start(["socat", f"PTY,link={tty},raw,echo=0", SHELL], log)
    holder: int | None = None
    try:
        wait_until(tty.exists, "socat pty", pty, log)
        # A pty whose near end nobody holds open ends socat when a client closes it (ser2net
        # does between connections). This descriptor is never read, so clients get every byte.
        holder = os.open(tty, os.O_RDWR | os.O_NOCTTY)
        yield tty
    finally:
        if holder is not None:
            os.close(holder)
        stop(pty)


@contextmanager
def ser2net_shell(workdir: Path) -> Iterator[int]:
    """One shell behind a pty that ser2net serves with RFC 2217 on a loopback port; yields the port."""
    with pty_shell(workdir) as tty:
        port = free_port()
        config = workdir / "ser2net.yaml"
        # nodelay: without it each answer waits for the client's delayed ACK (~40 ms).
        config.write_text(
            "%YAML 1.1\n---\n"
            "connection: &board\n"
            f"  accepter: telnet(rfc2217),tcp(nodelay),127.0.0.1,{port}\n"
            f"  connector: serialdev,{tty},115200n81,local\n"
            "  options:\n"
            "    kickolduser: true\n"
            "    mdns: false\n"
        )
        log = workdir / "ser2net.log"
        ser2net = start(["ser2net", "-n", "-u", "-c", str(config), "-P", str(workdir / "ser2net.pid")], log)
        try:
            wait_until(lambda: listening(port), "ser2net", ser2net, log)
            yield port
        finally:
            stop(ser2net)
