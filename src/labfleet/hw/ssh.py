"""SSH to build servers, QEMU hosts, boards and controllers, on asyncssh.

::

    async with SshPool() as pool:
        target = SshTarget(host="build-1.lab", username="ci", private_key=pem)
        host_key = await pool.host_key(target, timeout=30)       # registration: store it
        runner = SshRunner(pool=pool, target=replace(target, host_key=host_key))  # pinned
        await runner.run("uname -r", timeout=10)
        async with runner.stream("make -j8", timeout=3600) as proc:
            async for out in proc:
                ...
        digest = await runner.put(local=image, remote="/srv/tftp/Image", timeout=120)

The pieces: ``ssh_target`` (endpoints, keys, one connection attempt), ``ssh_pool``
(shared connections, retries, trust on first use), ``ssh_exec`` (commands and their
process groups), ``ssh_sftp`` (checked copies). This module is the one other code
imports; ``ssh_server`` is an in-process server for tests and benchmarks.
"""

from __future__ import annotations

from pathlib import Path

from labfleet.hw.commands import CommandResult
from labfleet.hw.ssh_exec import Output, RemoteProcess, kill_command
from labfleet.hw.ssh_pool import SshPool
from labfleet.hw.ssh_sftp import get_file, put_file
from labfleet.hw.ssh_target import Connector, SshSettings, SshTarget, fingerprint, open_connection

__all__ = [
    "Connector",
    "Output",
    "RemoteProcess",
    "SshPool",
    "SshRunner",
    "SshSettings",
    "SshTarget",
    "fingerprint",
    "open_connection",
]


class SshRunner:
    """Commands, streams and file copies on one machine, over the pool's shared connection.

    A ``CommandRunner``: drivers that run tools on a controller take one of these.
    """

    def __init__(self, *, pool: SshPool, target: SshTarget) -> None:
        self._pool = pool
        self.target = target

    @property
    def where(self) -> str:
        return self.target.where

    async def run(self, command: str, *, timeout: float, check: bool = True) -> CommandResult:
        """Runs ``command`` with ``sh``; past ``timeout`` its process group is killed (``Timeout``)."""
        async with self.stream(command, timeout=timeout) as proc:
            result = await proc.wait()
        return result.checked(command, self.where) if check else result

    def stream(self, command: str, *, timeout: float) -> RemoteProcess:
        """``command`` as an async context manager that yields its output as it comes."""
        return RemoteProcess(pool=self._pool, target=self.target, command=command, timeout=timeout)

    async def kill_group(self, group: str, *, timeout: float) -> None:
        """Kills a process group a ``RemoteProcess`` announced (``process_group()``), if it still runs."""
        pgid, _, start_time = group.partition(" ")
        if not pgid.isdigit() or int(pgid) < 2 or not start_time:
            raise ValueError(f"not a process group as announced: {group!r}")
        await self.run(kill_command(pgid=int(pgid), start_time=start_time), timeout=timeout, check=False)

    async def put(self, *, local: Path, remote: str, timeout: float) -> str:
        """Copies a local file to the machine; returns its SHA-256, checked on the machine."""
        return await put_file(
            pool=self._pool, runner=self, target=self.target, local=local, remote=remote, timeout=timeout
        )

    async def get(self, *, remote: str, local: Path, timeout: float) -> str:
        """Copies a file from the machine; returns its SHA-256, checked against the machine's."""
        return await get_file(
            pool=self._pool, runner=self, target=self.target, remote=remote, local=local, timeout=timeout
        )

    async def host_key(self, *, timeout: float) -> str:
        """The machine's host key as an OpenSSH line (see ``SshPool.host_key``)."""
        return await self._pool.host_key(self.target, timeout=timeout)
