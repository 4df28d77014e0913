"""An SSH server inside this process, on loopback, for the tests and benchmarks of the SSH driver.

It behaves as sshd does where the driver cares: each command runs with ``/bin/sh -c`` as
the leader of a new session (``new_session=False`` leaves it in ours, as some servers
do); its exit status or killing signal is reported; closing the channel sends the
command no signal; SFTP serves the local file system. ``login_output`` stands for what
a chatty shell rc file prints before each command. It runs commands as the user running
labfleet, so it listens on loopback only and accepts only the keys and password it is
given.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import signal
from collections.abc import Sequence
from types import TracebackType

import asyncssh

_SERVER_ERRORS = (OSError, asyncssh.Error, asyncssh.SignalReceived, asyncssh.BreakReceived)


def new_private_key(*, algorithm: str = "ssh-ed25519") -> str:
    """A fresh private key in OpenSSH format (for host keys and client keys in tests)."""
    return asyncssh.generate_private_key(algorithm).export_private_key("openssh").decode("ascii")


def public_key_of(*, private_key: str) -> str:
    """The OpenSSH public key line of a private key."""
    key = asyncssh.import_private_key(private_key)
    return key.export_public_key("openssh").decode("ascii").strip()


class LocalSshServer:
    """``async with LocalSshServer(authorized_keys=[pub]) as server:`` listens on ``server.port``."""

    def __init__(
        self,
        *,
        authorized_keys: Sequence[str] = (),
        password: str | None = None,
        host_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        new_session: bool = True,
        login_output: str = "",
        home: str | None = None,
    ) -> None:
        self.host = host
        # The login directory: where commands start and relative SFTP paths lead (as under sshd).
        self.home = home
        self.port = port
        self.private_host_key = host_key or new_private_key()
        self.host_key = public_key_of(private_key=self.private_host_key)
        self.accepted = 0
        self._authorized = list(authorized_keys)
        self._password = password
        self._new_session = new_session
        self._login_output = login_output.encode()
        self._server: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._children: set[int] = set()
        self._commands: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> LocalSshServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Starts listening (again, on the same port, after ``stop``)."""
        self._server = await asyncssh.create_server(
            lambda: _Server(self),
            self.host,
            self.port,
            server_host_keys=[asyncssh.import_private_key(self.private_host_key)],
            authorized_client_keys=(
                asyncssh.import_authorized_keys("\n".join(self._authorized) + "\n")
                if self._authorized
                else None
            ),
            process_factory=self._run,
            sftp_factory=self._sftp,
            encoding=None,
            config=None,
            # The listening socket of a stopped server may linger in TIME_WAIT.
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return _HomeSftp(chan, self.home)

    async def stop(self) -> None:
        """Stops listening, drops every connection and kills what its commands left running."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.drop_connections()
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        # Each command's pipes and exit are collected before the event loop may close.
        if self._commands:
            _, stuck = await asyncio.wait(self._commands, timeout=5)
            for task in stuck:
                task.cancel()
            # Let the cancelled ones kill and reap their child too (see ``_serve``).
            await asyncio.gather(*stuck, return_exceptions=True)
        self._children.clear()

    def drop_connections(self) -> None:
        """Cuts every client connection at the TCP level, as a reboot or a network cut would."""
        for conn in list(self._connections):
            conn.abort()
        self._connections.clear()

    async def _run(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        if command is None:
            process.stderr.write(b"this server runs commands only\n")
            process.exit(1)
            return
        if self._login_output:
            # What a login shell's rc file prints before the command runs.
            process.stdout.write(self._login_output)
        child = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=self._new_session,
            cwd=self.home,
        )
        # Without a new session the command's wrapper makes its own group, led by this pid.
        self._children.add(child.pid)
        # The command belongs to the server, not to the channel: as under sshd, it outlives
        # a dropped connection, and ``stop`` is what ends it.
        command_task = asyncio.create_task(self._serve(process, child))
        self._commands.add(command_task)
        command_task.add_done_callback(self._commands.discard)
        await asyncio.shield(command_task)

    async def _serve(
        self, process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process
    ) -> None:
        feeding = asyncio.create_task(self._feed(process, child))
        try:
            await asyncio.gather(
                *(
                    self._drain(pipe, sink)
                    for pipe, sink in ((child.stdout, process.stdout), (child.stderr, process.stderr))
                )
            )
            status = await child.wait()
        finally:
            feeding.cancel()
            self._children.discard(child.pid)
            if child.returncode is None:
                # Cancelled before the command ended: end it here, group and all, and reap it,
                # so that no pipe of it is left for the garbage collector after the loop closes.
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(child.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(child.wait(), 5)
        with contextlib.suppress(*_SERVER_ERRORS):
            if status >= 0:
                process.exit(status)
            else:
                process.exit_with_signal(signal.Signals(-status).name.removeprefix("SIG"))

    @staticmethod
    async def _feed(process: asyncssh.SSHServerProcess[bytes], child: asyncio.subprocess.Process) -> None:
        stdin = child.stdin
        if stdin is None:
            return
        while True:
            try:
                data = await process.stdin.read(65536)
            except asyncssh.SignalReceived as sig:
                # As sshd does: the signal request reaches the session's first process.
                with contextlib.suppress(ProcessLookupError, ValueError):
                    child.send_signal(signal.Signals[f"SIG{sig.signal}"])
                continue
            except _SERVER_ERRORS:
                break
            if not data:
                break
            stdin.write(data)
            with contextlib.suppress(OSError):
                await stdin.drain()
        stdin.close()

    @staticmethod
    async def _drain(source: asyncio.StreamReader | None, sink: asyncssh.SSHWriter[bytes]) -> None:
        connected = True
        while source is not None and (data := await source.read(65536)):
            if not connected:
                continue
            try:
                sink.write(data)
                await sink.drain()
            except _SERVER_ERRORS:
                # The channel is gone and, as under sshd, nothing tells the command: it
                # runs on until it ends or is killed. Its output is dropped.
                connected = False


class _HomeSftp(asyncssh.SFTPServer):
    """SFTP over the local file system, relative paths taken from the login directory."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], home: str | None) -> None:
        super().__init__(chan)
        self._home = os.fsencode(home) if home else None

    def map_path(self, path: bytes) -> bytes:
        if self._home is not None and not path.startswith(b"/"):
            return os.path.join(self._home, path)
        return path


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: LocalSshServer) -> None:
        self._owner = owner
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._owner.accepted += 1
        self._owner._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._owner._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return self._owner._password is not None

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._owner._password
        return expected is not None and hmac.compare_digest(password.encode(), expected.encode())
