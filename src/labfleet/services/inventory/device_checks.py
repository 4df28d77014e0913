"""Registration that reaches the device: SSH with the host key pinned on first use,
libvirt, and the serial console. A device that does not answer makes the registration
invalid, with the reason (R1.2, R7.2, R8.2); nothing is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace

from labfleet.errors import AuthFailed, DeviceError, HostKeyChanged, Invalid, Unreachable
from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.hw.libvirt import LibvirtHost
from labfleet.hw.probe import MachineFacts, probe_machine
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.schemas.boards import BoardCreate, BoardSshIn
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.schemas.hosts import HostCreate
from labfleet.schemas.ssh import SshIn
from labfleet.services.inventory.registration import BoardFacts, BuildServerFacts, HostFacts, ToolchainFact

MB = 1024**2
GB = 1024**3
# Where a QEMU host keeps its images; its disk is the host's storage.
LIBVIRT_IMAGES = "/var/lib/libvirt/images"


@contextmanager
def blame(field: str, *, ssh_field: str | None = None) -> Iterator[None]:
    """Name the input field a device error is about, unless it names one already."""
    try:
        yield
    except DeviceError as exc:
        if exc.field is None:
            exc.field = ssh_field if ssh_field and isinstance(exc, AuthFailed | HostKeyChanged) else field
        raise


def _gb(value: int | None) -> float | None:
    return None if value is None else round(value / GB, 2)


class DeviceChecks:
    """A ``RegistrationValidator`` that connects to every new resource before it is stored."""

    def __init__(self, *, pool: SshPool, timeout: float = 30.0, console_timeout: float = 8.0) -> None:
        self._pool = pool
        self._timeout = timeout
        self._console_timeout = console_timeout

    async def _ssh(self, address: str, ssh: SshIn | BoardSshIn) -> tuple[str, SshRunner]:
        try:
            target = SshTarget(
                host=address,
                port=ssh.port,
                username=ssh.username,
                private_key=ssh.private_key,
                password=ssh.password,
            )
        except Invalid as exc:
            raise Invalid(exc.message, field=f"ssh.{exc.field or 'private_key'}") from exc
        host_key = await self._pool.host_key(target, timeout=self._timeout)
        return host_key, SshRunner(pool=self._pool, target=replace(target, host_key=host_key))

    async def _machine(self, address: str, ssh: SshIn, disk_path: str) -> tuple[str, MachineFacts]:
        with blame("address", ssh_field="ssh"):
            host_key, runner = await self._ssh(address, ssh)
            facts = await probe_machine(runner=runner, disk_path=disk_path, timeout=self._timeout)
        return host_key, facts

    async def build_server(self, data: BuildServerCreate) -> BuildServerFacts:
        # The login directory is where builds get their workspaces.
        host_key, facts = await self._machine(data.address, data.ssh, ".")
        return BuildServerFacts(
            host_key=host_key,
            cpu_cores=facts.cpu_count,
            memory_mb=None if facts.memory_total_bytes is None else facts.memory_total_bytes // MB,
            disk_total_gb=_gb(facts.disk_total_bytes),
            disk_free_gb=_gb(facts.disk_free_bytes),
            load_1m=facts.load[0] if facts.load else None,
            toolchains=tuple(
                ToolchainFact(**{f.name: getattr(t, f.name) for f in dataclasses.fields(ToolchainFact)})
                for t in facts.toolchains
            ),
        )

    async def host(self, data: HostCreate) -> HostFacts:
        host_key, facts = await self._machine(data.address, data.ssh, LIBVIRT_IMAGES)
        with blame("libvirt_uri"):
            async with await LibvirtHost.open(data.libvirt_uri, timeout=self._timeout) as libvirt:
                caps = await libvirt.capabilities()
                stats = await libvirt.stats()
        return HostFacts(
            host_key=host_key,
            cpu_cores=stats.cpu_cores,
            memory_mb=stats.memory_mb,
            storage_gb=stats.storage_gb if stats.storage_gb is not None else _gb(facts.disk_total_bytes),
            kvm=caps.kvm,
            machine_types=caps.machine_types,
            native_architecture=caps.host_arch or None,
        )

    async def board(self, data: BoardCreate) -> BoardFacts:
        host_key = None
        if data.ssh is not None:
            with blame("ssh.address", ssh_field="ssh"):
                host_key, runner = await self._ssh(data.ssh.address, data.ssh)
                await runner.run("true", timeout=self._timeout)
        if data.console_url is not None:
            with blame("console_url"):
                await self._console_answers(data.console_url)
        return BoardFacts(host_key=host_key)

    async def _console_answers(self, url: str) -> None:
        await console_answers(url, timeout=self._timeout, quiet_after=self._console_timeout)


async def console_answers(url: str, *, timeout: float, quiet_after: float) -> None:
    """The console at ``url`` says something to a carriage return, or ``Unreachable``."""
    async with SerialConsole(ConsolePort(url=url), open_timeout=timeout) as console:
        # A console that says nothing to a carriage return is unplugged or off.
        await console.write(b"\r", timeout=timeout)
        try:
            await console.expect(r"\S", timeout=quiet_after)
        except DeviceError as exc:
            raise Unreachable(
                f"{url}: the console said nothing within {quiet_after:g} s "
                "(is the board powered and its console wired?)"
            ) from exc


@asynccontextmanager
async def device_checks(*, timeout: float = 30.0) -> AsyncIterator[DeviceChecks]:
    """Device checks over an SSH pool that lives as long as the ``async with``."""
    async with SshPool() as pool:
        yield DeviceChecks(pool=pool, timeout=timeout)
