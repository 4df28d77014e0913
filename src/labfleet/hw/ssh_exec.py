"""Running one command over SSH: output as it comes, the exit status at the end, and a kill
that reaches every process the command started.

Closing an SSH channel does not stop the remote command (sshd sends no signal, and
the ``signal`` channel request, where a server honours it, reaches only the session's
first process). So each command runs in a process group of its own and tells us its
id (and its leader's start time) on the first line of stdout; on timeout or
cancellation the channel is closed and ``kill -s KILL -- -<pgid>`` is sent on a second
channel of the same connection, which takes down the whole tree (``make -j`` and its
compilers included). The kill first checks that the leader's start time is still the
announced one, so that an id reused by another process is left alone.

sshd already makes each session's shell the leader of a new session and group, so the
command's group is normally the shell's own. Where the shell is not a group leader,
the command is started under ``setsid``, which then makes it one without forking.
Processes that leave the group on purpose (daemons, ``setsid`` inside the command)
are beyond reach, as they would be for a terminal's Ctrl-C.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import re
import signal
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NoReturn

import asyncssh

from labfleet.errors import DeviceError, Timeout
from labfleet.hw.commands import CommandResult, quote
from labfleet.hw.ssh_pool import SshPool
from labfleet.hw.ssh_target import SshTarget
from labfleet.hw.translate import ssh_errors

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]

_MARKER = re.compile(rb"labfleet-pgid (\d+) (\S+)\n")
# Output before the marker is passed on (a chatty shell rc file), but only this much is
# held back while looking for it.
_MARKER_SEARCH_LIMIT = 4096
_READ_SIZE = 65536
# Chunks waiting for the reader; when full, the SSH window stops and so does the remote.
_QUEUE_CHUNKS = 64
_KILL_TIMEOUT = 5.0

# Sets $st to the start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) of
# process $p, or "-". The command name may hold spaces and parentheses: cut at the last ")".
_START_TIME = r"""st=; read -r st 2>/dev/null </proc/$p/stat; st=${st##*) }; set -- $st
if [ $# -ge 20 ]; then st=${20}; else st=-; fi
"""

# Runs as the login shell's command, and announces "labfleet-pgid <pgid> <start time>"
# before the command starts. The group test reads /proc with builtins (no fork); without
# /proc the shell is taken to be sshd's session leader.
_LAUNCH = (
    r"""c=$1; p=$$
"""
    + _START_TIME
    + r"""printf 'labfleet-pgid %s %s\n' "$$" "$st"; exec /bin/sh -c "$c"
"""
)
_SETSID = r"""pg=; read -r _ _ _ _ pg _ 2>/dev/null </proc/$$/stat
if [ -n "$pg" ] && [ "$pg" != "$$" ] && command -v setsid >/dev/null 2>&1; then
  exec setsid /bin/sh -c "$1" labfleet "$2"
fi
exec /bin/sh -c "$1" labfleet "$2"
"""

# Kills group $1, but only if its leader is still the process that announced itself: a
# finished command's id may since have gone to someone else's process. A group whose
# leader is gone keeps its id while members remain, so those are killed unchecked.
_KILL = (
    r"""p=$1; want=$2
if [ -r /proc/$p/stat ]; then
"""
    + _START_TIME
    + r"""  [ "$st" = "$want" ] || exit 0
  kill -s KILL -- -$p 2>/dev/null || kill -s KILL $p 2>/dev/null
else
  kill -s KILL -- -$p 2>/dev/null
fi
exit 0
"""
)


def launch_command(command: str) -> str:
    """``command`` wrapped to run in its own process group and announce the group's id."""
    return f"exec /bin/sh -c {quote(_SETSID)} labfleet {quote(_LAUNCH)} {quote(command)}"


def kill_command(*, pgid: int, start_time: str) -> str:
    """Kills process group ``pgid`` if its leader still started at ``start_time`` (as announced)."""
    return f"exec /bin/sh -c {quote(_KILL)} labfleet-kill {pgid} {quote(start_time)}"


@dataclass(frozen=True, slots=True)
class Output:
    """A piece of a command's output, in the order it arrived on its stream."""

    stream: Stream
    text: str


class _Eof:
    pass


_EOF = _Eof()


def _exit_status(process: asyncssh.SSHClientProcess[bytes]) -> int:
    status = process.exit_status
    if status is not None and status >= 0:
        return status
    signal_info = process.exit_signal
    if signal_info is not None:
        # The shell's convention: killed by signal N exits with 128 + N.
        with contextlib.suppress(KeyError):
            return 128 + signal.Signals[f"SIG{signal_info[0]}"].value
    return 255


class RemoteProcess:
    """One command running over SSH, used as an async context manager.

    ::

        async with runner.stream("make -j8", timeout=3600) as proc:
            async for out in proc:
                job_log.write(out.stream, out.text)
        print(proc.exit_status)

    ``timeout`` covers everything from opening the channel to the exit status. When it
    passes, when the caller is cancelled, or when the block is left before the command
    finished, the command's process group is killed; past the timeout the iteration
    raises ``Timeout``.
    """

    def __init__(self, *, pool: SshPool, target: SshTarget, command: str, timeout: float) -> None:
        self.command = command
        self.exit_status: int | None = None
        self._pool = pool
        self._target = target
        self._timeout = timeout
        self._deadline = 0.0
        self._process: asyncssh.SSHClientProcess[bytes] | None = None
        self._pgid: int | None = None
        self._start_time = "-"
        self._announced = asyncio.Event()
        self._killed = False
        self._queue: asyncio.Queue[Output | DeviceError | _Eof] = asyncio.Queue(_QUEUE_CHUNKS)
        self._pumps: list[asyncio.Task[None]] = []
        self._open_streams = 0
        self._held = contextlib.AsyncExitStack()

    @property
    def where(self) -> str:
        return self._target.where

    async def __aenter__(self) -> RemoteProcess:
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._timeout
        try:
            async with asyncio.timeout_at(self._deadline):
                await self._held.enter_async_context(self._pool.session(self._target))
                self._process = await self._pool.open_channel(self._target, self._open)
        except TimeoutError:
            await self._release()
            raise Timeout(
                f"{self.where}: `{self.command}` could not start within {self._timeout:g} s"
            ) from None
        except BaseException:
            await self._release()
            raise
        self._pumps = [
            asyncio.create_task(self._pump(self._process.stdout, "stdout")),
            asyncio.create_task(self._pump(self._process.stderr, "stderr")),
        ]
        self._open_streams = len(self._pumps)
        return self

    async def _open(self, conn: asyncssh.SSHClientConnection) -> asyncssh.SSHClientProcess[bytes]:
        # No stdin: a command that reads it sees end of file instead of waiting forever.
        process: asyncssh.SSHClientProcess[bytes] = await conn.create_process(
            launch_command(self.command), stdin=asyncssh.DEVNULL, encoding=None
        )
        return process

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.exit_status is None:
                # Shielded: a second cancellation must not leave the command running.
                await asyncio.shield(self._kill())
        finally:
            await self._release()

    def __aiter__(self) -> RemoteProcess:
        return self

    async def __anext__(self) -> Output:
        while self._open_streams:
            try:
                async with asyncio.timeout_at(self._deadline):
                    item = await self._queue.get()
            except TimeoutError:
                await self._time_out()
            if isinstance(item, _Eof):
                self._open_streams -= 1
            elif isinstance(item, DeviceError):
                raise item
            else:
                return item
        if self.exit_status is None:
            await self._finish()
        raise StopAsyncIteration

    async def process_group(self) -> str | None:
        """``"<pgid> <start time>"`` of the running command, once announced (None if it never is).

        Keep it to kill the group later from another connection (``SshRunner.kill_group``),
        e.g. after this process died and a new one takes over the work.
        """
        try:
            async with asyncio.timeout_at(self._deadline):
                await self._announced.wait()
        except TimeoutError:
            return None
        return None if self._pgid is None else f"{self._pgid} {self._start_time}"

    async def wait(self) -> CommandResult:
        """Reads the output to the end and returns it with the exit status."""
        stdout: list[str] = []
        stderr: list[str] = []
        async for out in self:
            (stdout if out.stream == "stdout" else stderr).append(out.text)
        return CommandResult(self.exit_status or 0, "".join(stdout), "".join(stderr))

    async def _finish(self) -> None:
        process = self._process
        if process is None:
            raise DeviceError(f"{self.where}: `{self.command}` was never started")
        try:
            async with asyncio.timeout_at(self._deadline):
                with ssh_errors(self.where):
                    await process.wait_closed()
        except TimeoutError:
            await self._time_out()
        self.exit_status = _exit_status(process)

    async def _time_out(self) -> NoReturn:
        await asyncio.shield(self._kill())
        raise Timeout(
            f"{self.where}: `{self.command}` did not finish within {self._timeout:g} s; "
            "its process group was killed"
        )

    async def _pump(self, reader: asyncssh.SSHReader[bytes], stream: Stream) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        head = b"" if stream == "stdout" else None
        try:
            with ssh_errors(self.where):
                while chunk := await reader.read(_READ_SIZE):
                    if head is not None:
                        head, chunk = self._find_marker(head + chunk)
                    if chunk and (text := decoder.decode(chunk)):
                        await self._queue.put(Output(stream, text))
                if text := decoder.decode(head or b"", final=True):
                    await self._queue.put(Output(stream, text))
        except DeviceError as exc:
            await self._queue.put(exc)
        finally:
            if stream == "stdout":
                self._announced.set()
            await self._queue.put(_EOF)

    def _find_marker(self, data: bytes) -> tuple[bytes | None, bytes]:
        """(what to keep looking in, or None once done; what to pass on)."""
        found = _MARKER.search(data)
        if found is not None:
            self._pgid = int(found.group(1))
            self._start_time = found.group(2).decode("ascii", "replace")
            self._announced.set()
            return None, data[: found.start()] + data[found.end() :]
        if len(data) > _MARKER_SEARCH_LIMIT:
            log.warning("%s: `%s` did not announce its process group", self.where, self.command)
            self._announced.set()
            return None, data
        return data, b""

    async def _kill(self) -> None:
        process = self._process
        if process is None or self.exit_status is not None or self._killed:
            return
        self._killed = True
        pgid = self._pgid
        if pgid is None:
            # The command never announced its group: the best left is the signal
            # request, which servers that honour it deliver to the session's shell.
            with contextlib.suppress(OSError, asyncssh.Error):
                process.send_signal("KILL")
            process.close()
            return
        # Our channel first: the kill needs a session, and this one is ours to give back.
        process.close()
        try:
            async with asyncio.timeout(_KILL_TIMEOUT):
                await self._pool.open_channel(
                    self._target,
                    lambda conn: conn.run(kill_command(pgid=pgid, start_time=self._start_time), check=False),
                )
        except (TimeoutError, DeviceError) as exc:
            log.warning(
                "%s: could not kill process group %d of `%s`: %s", self.where, pgid, self.command, exc
            )

    async def _release(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        for pump in self._pumps:
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self._pumps = []
        if self._process is not None:
            self._process.close()
        await self._held.aclose()
