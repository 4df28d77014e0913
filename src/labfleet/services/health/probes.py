"""Asking a stored host or board whether it answers: before it leaves maintenance (R12.3), and
for the periodic health checks.

``LiveProbe`` reaches the device through ``hw/``: a host's libvirt (and its capacity), a
board's console (it must answer a carriage return) or, without a console, SSH. ``NoProbe``
trusts the operator; it is what ``LABFLEET_DEVICE_CHECKS=false`` gives, as for registration.
A probe raises a ``DeviceError`` saying what did not answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from labfleet.db.models import Board, Host
from labfleet.errors import DeviceError, Timeout
from labfleet.hw.libvirt import LibvirtHost
from labfleet.hw.probe import MachineFacts, probe_machine
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import credentials
from labfleet.services.inventory.device_checks import console_answers

# A build server's login directory: its build workspaces live under it (as at registration).
WORKSPACE_DISK = "."


@dataclass(frozen=True, slots=True)
class HostAccess:
    name: str
    libvirt_uri: str


@dataclass(frozen=True, slots=True)
class BoardAccess:
    name: str
    console_url: str | None
    ssh: SshTarget | None


def host_access(host: Host) -> HostAccess:
    """What the probe needs, copied out of the row: the device is asked with no transaction open."""
    return HostAccess(name=host.hostname, libvirt_uri=host.libvirt_uri)


def board_access(board: Board, secrets: SecretBox) -> BoardAccess:
    ssh = None
    if board.ssh_address and board.ssh_user and board.ssh_secret:
        ssh = credentials.ssh_target(secrets, board, address=board.ssh_address)
    return BoardAccess(name=board.name, console_url=board.console_url, ssh=ssh)


class ResourceProbe(Protocol):
    async def host(self, access: HostAccess) -> None: ...

    async def board(self, access: BoardAccess) -> None: ...

    async def build_server(self, ssh: SshTarget) -> MachineFacts | None:
        """What the server's health check finds; None when devices are not asked."""
        ...


class NoProbe:
    async def host(self, access: HostAccess) -> None:
        return None

    async def board(self, access: BoardAccess) -> None:
        return None

    async def build_server(self, ssh: SshTarget) -> MachineFacts | None:
        return None


class LiveProbe:
    def __init__(self, *, pool: SshPool, timeout: float = 20.0, console_quiet: float = 8.0) -> None:
        self._pool = pool
        self._timeout = timeout
        self._quiet = console_quiet

    async def host(self, access: HostAccess) -> None:
        async with await LibvirtHost.open(access.libvirt_uri, timeout=self._timeout) as libvirt:
            await libvirt.stats()

    async def board(self, access: BoardAccess) -> None:
        if access.console_url:
            await console_answers(access.console_url, timeout=self._timeout, quiet_after=self._quiet)
        elif access.ssh is not None:
            await SshRunner(pool=self._pool, target=access.ssh).run("true", timeout=self._timeout)
        else:
            raise DeviceError(f"board {access.name} has neither a console nor SSH to check it through")

    async def build_server(self, ssh: SshTarget) -> MachineFacts | None:
        """The periodic check's probe: SSH in, then CPUs, memory, load and the workspace disk."""
        runner = SshRunner(pool=self._pool, target=ssh)
        try:
            async with asyncio.timeout(self._timeout):
                return await probe_machine(
                    runner=runner, disk_path=WORKSPACE_DISK, timeout=self._timeout, toolchains=False
                )
        except TimeoutError:
            raise Timeout(f"{ssh.where}: no answer within {self._timeout:g} s") from None


@asynccontextmanager
async def live_probe(*, timeout: float = 20.0) -> AsyncIterator[LiveProbe]:
    """A ``LiveProbe`` over an SSH pool that lives as long as the ``async with``."""
    async with SshPool() as pool:
        yield LiveProbe(pool=pool, timeout=timeout)
