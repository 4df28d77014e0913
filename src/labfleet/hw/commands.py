"""Running a command somewhere: the one seam between drivers and the machine they act on.

Power and flash drivers that run a tool (uhubctl, gpioset, bmaptool, fastboot) take a
``CommandRunner`` bound to the controller host: an SSH connection in production, the
local machine for site hooks, a ``FakeRunner`` in unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from dataclasses import dataclass
from typing import Protocol

from labfleet.errors import CommandFailed, Timeout


@dataclass(frozen=True, slots=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str

    def checked(self, command: str, where: str) -> CommandResult:
        """This result, or ``CommandFailed`` naming the command, exit status and stderr."""
        if self.exit_status != 0:
            raise CommandFailed(
                f"{where}: `{command}` exited with {self.exit_status}: {self.stderr.strip()[-500:]}",
                exit_status=self.exit_status,
                stderr=self.stderr,
            )
        return self


class CommandRunner(Protocol):
    """Runs shell commands on one machine."""

    @property
    def where(self) -> str: ...

    async def run(self, command: str, *, timeout: float, check: bool = True) -> CommandResult: ...


def quote(*words: str | int) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


class LocalRunner:
    """Runs commands on the labfleet host itself (site hooks of the ``command`` drivers)."""

    where = "localhost"

    async def run(self, command: str, *, timeout: float, check: bool = True) -> CommandResult:
        # Its own session, so that a timeout or a cancellation kills the whole process
        # group (the shell and whatever it started), not only the shell.
        proc = await asyncio.create_subprocess_shell(
            command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            await _kill_group(proc)
            raise Timeout(f"localhost: `{command}` did not finish within {timeout:g} s") from None
        except asyncio.CancelledError:
            await _kill_group(proc)
            raise
        result = CommandResult(
            proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )
        return result.checked(command, self.where) if check else result


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    # Reap it and close its pipes, so nothing is left for the garbage collector.
    await proc.communicate()
