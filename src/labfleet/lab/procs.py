"""Running commands and daemons for the lab: pid files, liveness, start and stop, waits with deadlines.

Daemons that cannot detach by themselves are started through ``start-stop-daemon
--background``, so that they are children of init, not of whoever ran ``lab up``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labfleet.errors import DeviceError, Timeout
from labfleet.hw.commands import CommandResult, quote

SSD = "start-stop-daemon"


@dataclass(frozen=True, slots=True)
class Daemon:
    """A process of the lab, known by its pid file.

    ``marker`` is a string its command line must contain (a path inside the lab's state
    directory), so that a stale pid file naming a reused pid is never taken for the lab's.
    """

    name: str
    pid_file: Path
    marker: str


def run(
    argv: Sequence[str | Path],
    *,
    what: str,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command to completion; its stdout, or ``CommandFailed`` naming ``what``."""
    words = [str(a) for a in argv]
    try:
        proc = subprocess.run(  # noqa: S603 - argv built by the lab, never a shell
            words,
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env} if env else None,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Timeout(f"{what}: `{quote(*words)}` did not finish within {timeout:g} s") from None
    except FileNotFoundError as exc:
        raise DeviceError(f"{what}: {words[0]} is not installed (run scripts/setup --lab)") from exc
    return CommandResult(proc.returncode, proc.stdout, proc.stderr).checked(quote(*words), what).stdout


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _alive(pid: int, marker: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses and may contain spaces.
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and marker in cmdline


def running_pid(daemon: Daemon) -> int | None:
    """The daemon's pid if it is running, else None."""
    pid = read_pid(daemon.pid_file)
    return pid if pid is not None and _alive(pid, daemon.marker) else None


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (an sshd's sessions, a session's commands)."""
    tree = _children()
    found: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(tree.get(child, []))
    return found


def start_background(
    daemon: Daemon, argv: Sequence[str | Path], *, log: Path, env: Mapping[str, str] | None = None
) -> None:
    """Start a program that does not detach by itself, detached, with its pid file and log."""
    daemon.pid_file.unlink(missing_ok=True)
    words = [str(a) for a in argv]
    ssd = [SSD, "--start", "--background", "--make-pidfile", "--pidfile", str(daemon.pid_file)]
    run(
        [*ssd, "--output", str(log), "--chdir", "/", "--exec", words[0], "--", *words[1:]],
        what=daemon.name,
        timeout=30,
        env=env,
    )


def stop(daemon: Daemon, *, grace: float = 5) -> bool:
    """Stop the daemon and whatever it started; whether it was running."""
    pid = running_pid(daemon)
    if pid is not None:
        below = descendants(pid)
        stop_pid(pid, daemon.name, grace)
        for child in below:
            if _alive(child, ""):
                stop_pid(child, f"{daemon.name} (child {child})", grace)
    daemon.pid_file.unlink(missing_ok=True)
    return pid is not None


def stop_pid(pid: int, what: str, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds.

    A process counts as gone once it is a zombie: reaping it is its parent's business,
    and some inits (the one of this project's machines) reap only every second or two.
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid, ""):
                return
            time.sleep(0.01)
    raise Timeout(f"{what}: process {pid} did not die on SIGKILL")


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    hint: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` until it holds; ``Timeout`` naming ``what`` (and a hint, e.g. a log tail) if not."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            extra = hint() if hint else ""
            raise Timeout(f"{what}: not ready within {timeout:g} s" + (f"\n{extra}" if extra else ""))
        time.sleep(interval)


def listening(port: int) -> bool:
    """Whether something listens on this TCP port, asked of the kernel (``ss``), not by connecting."""
    out = run(["ss", "-Hltn", f"sport = :{port}"], what=f"port {port}", timeout=10)
    return bool(out.strip())


def tail(path: Path, lines: int = 15) -> str:
    """The end of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    last = text.strip().splitlines()[-lines:]
    return f"last lines of {path}:\n" + "\n".join(f"  {line}" for line in last)


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text``: what `lab down` must leave none of."""
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if text in cmdline and _alive(int(entry.name), text):
            found.append((int(entry.name), cmdline))
    return found


def processes_of_user(uid: int) -> list[tuple[int, str]]:
    """Live processes running as ``uid`` (the build user's sessions)."""
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if _alive(int(entry.name), ""):
            found.append((int(entry.name), cmdline))
    return found
