"""A QEMU VM on a host of the pool.

Deploy: the artifacts are copied to the host over SFTP and checked there (SHA-256), and a
domain is defined from generated XML (kernel, initramfs or rootfs, dtb, command line, a TCP
serial console on a port of its own). Boot: the domain is started paused so the console is
attached before the guest prints anything, then resumed while the console is watched for
the boot pattern. A failure destroys and undefines the domain and removes the files.
"""

from __future__ import annotations

import asyncio
import re
import secrets as random
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Artifact, Host
from labfleet.db.repositories import environments as repo
from labfleet.errors import Corrupted, DeviceError, LabfleetError
from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.hw.libvirt import DomainSpec, LibvirtHost, domain_xml
from labfleet.hw.probe import listening_ports
from labfleet.hw.qemu import DEFAULT_CPU, kernel_cmdline
from labfleet.hw.ssh import SshPool, SshRunner
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts import service as artifact_service
from labfleet.services.artifacts.service import Store
from labfleet.services.environments.compatibility import machine_for
from labfleet.services.environments.policy import ProvisionPolicy
from labfleet.services.environments.record import EnvRecord
from labfleet.services.environments.targets.base import Boot, ProvisionFailed, Say, console_at
from labfleet.services.health import hosts as host_health
from labfleet.services.health.hosts import HostHealthPolicy, HostProbe
from labfleet.services.health.probes import HostAccess
from labfleet.services.inventory import credentials


@dataclass(frozen=True, slots=True)
class Vm:
    """Where an environment's VM lives: chosen once (console port, domain, directory) and kept."""

    env_id: int
    host_id: int
    hostname: str
    address: str
    libvirt_uri: str
    ssh: Any
    domain: str
    remote_dir: str
    console_port: int
    console_url: str
    kvm: bool


async def _free_port(
    session: AsyncSession,
    policy: ProvisionPolicy,
    host_id: int,
    hostname: str,
    *,
    taken: frozenset[int] = frozenset(),
) -> int:
    """The lowest console port of the range that no environment on the host holds (nor ``taken``)."""
    used = await repo.console_ports_in_use(session, host_id) | taken
    first, last = policy.console_ports
    free = next((p for p in range(first, last + 1) if p not in used), None)
    if free is None:
        all_taken = f"every console port {first}-{last} is taken"
        raise ProvisionFailed(f"host {hostname}: {all_taken}", resource=hostname)
    return free


async def place(record: EnvRecord, secrets: SecretBox, policy: ProvisionPolicy, env_id: int) -> Vm:
    """The VM's place on its host, chosen on first use and kept on the environment's row."""
    async with record.sessions() as session:
        env = await record.load(session, env_id)
        assert env.host_id is not None
        host = await session.get(Host, env.host_id)
        assert host is not None
        if env.domain_name is None or env.console_port is None or env.remote_dir is None:
            free = await _free_port(session, policy, host.id, host.hostname)
            env.console_port = free
            # A nonce: several labfleets (or databases) may share a host.
            nonce = random.token_hex(4)
            env.domain_name = f"labfleet-env-{env.id}-{nonce}"
            env.remote_dir = str(PurePosixPath(policy.deploy_dir) / f"env-{env.id}-{nonce}")
            env.console_url = f"socket://{host.address}:{free}"
            await session.commit()
        try:
            ssh = credentials.ssh_target(secrets, host)
        except LabfleetError as exc:
            raise ProvisionFailed(
                f"host {host.hostname}: its stored SSH access cannot be used: {exc.message}",
                resource=host.hostname,
            ) from exc
        return Vm(
            env_id=env.id,
            host_id=host.id,
            hostname=host.hostname,
            address=host.address,
            libvirt_uri=host.libvirt_uri,
            ssh=ssh,
            domain=env.domain_name,
            remote_dir=env.remote_dir,
            console_port=env.console_port,
            console_url=env.console_url or f"socket://{host.address}:{env.console_port}",
            kvm=bool(host.kvm and host.native_architecture == env.architecture),
        )


class QemuTarget:
    def __init__(
        self,
        *,
        record: EnvRecord,
        store: Store,
        secrets: SecretBox,
        pool: SshPool,
        probe: HostProbe,
        policy: ProvisionPolicy = ProvisionPolicy(),
    ) -> None:
        self.record = record
        self.store = store
        self.secrets = secrets
        self.pool = pool
        self.probe = probe
        self.policy = policy

    async def _vm(self, env_id: int) -> Vm:
        return await place(self.record, self.secrets, self.policy, env_id)

    # -- deploy

    async def deploy(self, env_id: int, say: Say) -> None:
        vm = await self._vm(env_id)
        runner = SshRunner(pool=self.pool, target=vm.ssh)
        try:
            vm = await self._port_free_on_host(vm, runner, say)
            placed = await self._transfer(vm, runner, say)
            await self.record.step(env_id, "transfer", "succeeded", files=placed)
            await self._define(vm, placed, say)
            await self.record.step(
                env_id, "define", "succeeded", domain=vm.domain, console_url=vm.console_url
            )
        except (DeviceError, Corrupted, OSError) as exc:
            reason = exc.message if isinstance(exc, LabfleetError) else str(exc)
            say(f"deploying to {vm.hostname} failed: {reason}; rolling back")
            await self.record.step(env_id, "deploy", "failed", error=reason)
            await self._remove(vm, say)
            raise ProvisionFailed(
                f"deploying to host {vm.hostname} failed: {reason}", resource=vm.hostname
            ) from exc

    async def _transfer(self, vm: Vm, runner: SshRunner, say: Say) -> dict[str, str]:
        """The artifacts copied into the VM's directory and checked there, by type."""
        async with self.record.sessions() as session:
            env = await self.record.load(session, vm.env_id)
            rows = [
                a for a in [await session.get(Artifact, i) for i in env.artifacts.values()] if a is not None
            ]
        placed: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="labfleet-deploy-") as tmp:
            say(f"copying {len(rows)} artifact(s) to {vm.hostname}:{vm.remote_dir}")
            await runner.run(f"mkdir -p {shlex.quote(vm.remote_dir)}", timeout=60)
            for artifact in rows:
                local = await self._stage(artifact, Path(tmp))
                remote = f"{vm.remote_dir}/{artifact.type}-{Path(artifact.name).name}"
                digest = await runner.put(local=local, remote=remote, timeout=self.policy.transfer_timeout_s)
                say(f"  {artifact.name}: {artifact.size} bytes, sha256 {digest[:16]}… checked on the host")
                placed[artifact.type] = remote
        return placed

    async def _define(self, vm: Vm, placed: dict[str, str], say: Say) -> None:
        async with self.record.sessions() as session:
            env = await self.record.load(session, vm.env_id)
            request, arch, vcpus, memory = dict(env.request), env.architecture, env.vcpus, env.memory_mb
        boot = request.get("boot") or {}
        machine = machine_for(arch, (request.get("requirements") or {}).get("machine"))
        assert machine is not None
        root = placed.get("initramfs")
        disks = [placed["rootfs"]] if root is None and "rootfs" in placed else []
        cmdline = kernel_cmdline(arch, str(boot.get("cmdline") or ""), root_disk=bool(disks))
        spec = DomainSpec(
            name=vm.domain,
            architecture=arch,
            machine=machine,
            vcpus=vcpus,
            memory_mb=memory,
            kernel=placed["kernel"],
            initrd=root,
            dtb=placed.get("dtb"),
            cmdline=cmdline,
            console_port=vm.console_port,
            # Reached from labfleet: on the host's own address unless that is loopback.
            console_host=vm.address if vm.address in ("127.0.0.1", "localhost") else "0.0.0.0",  # noqa: S104
            virt_type="kvm" if vm.kvm else "qemu",
            cpu_model=None if vm.kvm else DEFAULT_CPU.get(arch),
            disks=disks,
        )
        async with await LibvirtHost.open(vm.libvirt_uri, timeout=self.policy.libvirt_timeout_s) as libvirt:
            await libvirt.define(domain_xml(spec))
        say(f"defined {vm.domain} on {vm.hostname}: {vcpus} vCPU, {memory} MiB, {machine}, {cmdline!r}")

    async def _port_free_on_host(self, vm: Vm, runner: SshRunner, say: Say) -> Vm:
        """The console port, moved if something on the host listens on it already (another
        labfleet sharing the host, or anything else): ports are only known free per database."""
        taken = await listening_ports(runner, timeout=30)
        if vm.console_port not in taken:
            return vm
        async with self.record.sessions() as session:
            env = await self.record.load(session, vm.env_id)
            free = await _free_port(session, self.policy, vm.host_id, vm.hostname, taken=taken)
            env.console_port = free
            env.console_url = f"socket://{vm.address}:{free}"
            await session.commit()
        say(f"console port {vm.console_port} is in use on {vm.hostname}: using {free}")
        return await self._vm(vm.env_id)

    async def _stage(self, artifact: Artifact, directory: Path) -> Path:
        path = directory / f"{artifact.id}-{Path(artifact.name).name}"
        async with self.record.sessions() as session:
            fresh = await session.get(Artifact, artifact.id)
            if fresh is None:
                raise DeviceError(f"artifact {artifact.id} ({artifact.name}) was removed")
            chunks = await artifact_service.open_verified(session=session, store=self.store, artifact=fresh)
            with path.open("wb") as out:
                async for chunk in chunks:
                    await asyncio.to_thread(out.write, chunk)
            await session.commit()
        return path

    # -- boot

    async def boot(self, env_id: int, boot: Boot, say: Say, console_log: Say) -> None:
        vm = await self._vm(env_id)

        def sink(data: bytes) -> None:
            console_log(data.decode("utf-8", "replace"))

        try:
            async with await LibvirtHost.open(
                vm.libvirt_uri, timeout=self.policy.libvirt_timeout_s
            ) as libvirt:
                await libvirt.start(vm.domain, paused=True)
                say(f"started {vm.domain} paused; console {vm.console_url}")
                console = SerialConsole(
                    ConsolePort(url=vm.console_url),
                    log=sink,
                    open_timeout=self.policy.console_open_timeout_s,
                    name=f"{vm.domain} console",
                )
                async with console:
                    await libvirt.resume(vm.domain)
                    say(
                        f"resumed {vm.domain}; watching the console for {boot.pattern!r} "
                        f"(up to {boot.timeout_s:g} s)"
                    )
                    await console.expect(re.compile(boot.pattern), timeout=boot.timeout_s)
            say(f"{vm.domain} booted")
        except DeviceError as exc:
            await self.record.step(env_id, "boot", "failed", error=exc.message)
            say(f"boot on {vm.hostname} failed: {exc.message}")
            raise ProvisionFailed(
                f"booting on host {vm.hostname} failed: {exc.message}", resource=vm.hostname
            ) from exc

    # -- console, check, teardown

    async def console(self, env_id: int, log: Callable[[bytes], None] | None = None) -> SerialConsole:
        async with self.record.sessions() as session:
            url = (await self.record.load(session, env_id)).console_url
        if url is None:
            raise DeviceError(f"environment #{env_id} has no console")
        return console_at(url, self.policy, env_id, log)

    async def check(self, env_id: int, say: Say) -> bool:
        async with self.record.sessions() as session:
            env = await self.record.load(session, env_id)
            host = await session.get(Host, env.host_id) if env.host_id else None
        if host is None:
            return True
        target = host_health.Target(
            host_id=host.id,
            hostname=host.hostname,
            status=host.status,
            access=HostAccess(name=host.hostname, libvirt_uri=host.libvirt_uri),
        )
        probe = await host_health.probe(probe=self.probe, target=target, timeout=self.policy.check_timeout_s)
        async with self.record.sessions() as session:
            await host_health.record(session=session, probe=probe, policy=HostHealthPolicy())
            await session.commit()
        say(f"health check of host {host.hostname}: {'passed' if probe.answered else probe.error}")
        return probe.answered

    async def teardown(self, env_id: int, say: Say) -> None:
        async with self.record.sessions() as session:
            env = await self.record.load(session, env_id)
            placed = env.domain_name is not None and env.host_id is not None
        if not placed:
            return
        try:
            await self._remove(await self._vm(env_id), say)
        except LabfleetError as exc:
            say(f"environment #{env_id}: could not clean up on its host: {exc.message}")
        # The host's utilization sample counted the VM just removed: take a new one now, or
        # selection would judge the host by it (and pass it over) until the next periodic check.
        await self.check(env_id, lambda _: None)

    async def _remove(self, vm: Vm, say: Say) -> None:
        """Destroy and undefine the domain and remove its files; what cannot be reached is said."""
        try:
            async with await LibvirtHost.open(
                vm.libvirt_uri, timeout=self.policy.libvirt_timeout_s
            ) as libvirt:
                if await libvirt.exists(vm.domain):
                    await libvirt.destroy(vm.domain)
                    await libvirt.undefine(vm.domain)
                    say(f"destroyed and undefined {vm.domain}")
        except DeviceError as exc:
            say(f"could not remove domain {vm.domain} from {vm.hostname}: {exc.message}")
        try:
            runner = SshRunner(pool=self.pool, target=vm.ssh)
            await runner.run(f"rm -rf -- {shlex.quote(vm.remote_dir)}", timeout=60)
            say(f"removed {vm.hostname}:{vm.remote_dir}")
        except DeviceError as exc:
            say(f"could not remove {vm.remote_dir} from {vm.hostname}: {exc.message}")
