"""Deploying, booting and tearing down an environment on its device (R5, R6).

Every step reaches a device with no transaction open, and records what it did on the
environment's row in a short transaction of its own, so a process that dies leaves a row
that says what to clean up.

- QEMU: the artifacts are copied to the host over SFTP and checked there (SHA-256), a
  domain is defined from generated XML (kernel, initramfs or rootfs, dtb, command line, a
  TCP serial console on a port of its own), started paused so the console is attached
  before the guest prints anything, then resumed while the console is watched for the
  boot pattern. A failure destroys and undefines the domain and removes the files.
- Board: a flash job (written, read back and verified, rolled back to the known-good image on
  failure; ``services/flashing/service.py``) written by the flash worker, then a power cycle
  with the console watched for the boot pattern (``services/power/service.py``).

A failure is a ``ProvisionFailed``; whether the resource is to blame is decided by a
health check of it (``resource_fault``), recorded as the periodic checks record theirs.
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

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.base import utcnow
from labfleet.db.models import Artifact, Board, Environment, Host
from labfleet.db.models.environments import ENV_PROVISIONING, ENV_READY, QEMU
from labfleet.db.models.flashing import FINAL as FLASH_FINAL
from labfleet.db.models.flashing import SUCCEEDED as FLASH_SUCCEEDED
from labfleet.db.models.power import SUCCEEDED as POWER_SUCCEEDED
from labfleet.db.repositories import environments as repo
from labfleet.errors import Corrupted, DeviceError, LabfleetError
from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.hw.libvirt import DomainSpec, LibvirtHost, domain_xml
from labfleet.hw.probe import listening_ports
from labfleet.hw.qemu import DEFAULT_CPU, kernel_cmdline
from labfleet.hw.ssh import SshPool, SshRunner
from labfleet.schemas.auth import Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.flashing import FlashRequest
from labfleet.schemas.power import PowerCycleIn
from labfleet.secretbox import SecretBox
from labfleet.services.artifacts import service as artifact_service
from labfleet.services.artifacts.service import Store
from labfleet.services.core.events import EventBus
from labfleet.services.environments import service as environments
from labfleet.services.environments.compatibility import (
    IMAGE_TYPES,
    machine_for,
)
from labfleet.services.flashing import service as flashing
from labfleet.services.health import boards as board_health
from labfleet.services.health import hosts as host_health
from labfleet.services.health.boards import BoardHealthPolicy, BoardProbe
from labfleet.services.health.hosts import HostHealthPolicy, HostProbe
from labfleet.services.health.probes import HostAccess
from labfleet.services.inventory import credentials
from labfleet.services.power import service as power
from labfleet.services.power.access import Hardware
from labfleet.services.power.service import DEFAULT_BOOT_PATTERN, PowerPolicy

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionPolicy:
    deploy_dir: str = "/var/lib/libvirt/images/labfleet"
    """Where a host keeps deployed artifacts, one directory per environment (QEMU must read it)."""
    console_ports: tuple[int, int] = (24100, 24899)
    """The TCP ports a host's VM consoles listen on, one per environment."""
    transfer_timeout_s: float = 900.0
    libvirt_timeout_s: float = 60.0
    console_open_timeout_s: float = 20.0
    flash_timeout_s: float = 3600.0
    poll_s: float = 0.5
    check_timeout_s: float = 20.0


class ProvisionFailed(LabfleetError):
    """Deploying or booting failed; ``resource_fault``: the target itself failed its health check."""

    def __init__(self, message: str, *, resource: str, resource_fault: bool = False) -> None:
        super().__init__(message)
        self.resource = resource
        self.resource_fault = resource_fault


@dataclass(frozen=True, slots=True)
class _Vm:
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


def _actor(env: Environment) -> Actor:
    # Device work is done on behalf of the environment's owner, who holds its reservation.
    return Actor(name=env.owner, role=Role.operator, team=env.team)


class Provisioner:
    """Deploy, boot, console and teardown of environments; one per worker."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus | None,
        store: Store,
        secrets: SecretBox,
        pool: SshPool,
        hardware: Hardware,
        host_probe: HostProbe,
        board_probe: BoardProbe,
        policy: ProvisionPolicy = ProvisionPolicy(),
        power_policy: PowerPolicy = PowerPolicy(),
        flash_policy: flashing.FlashPolicy = flashing.FlashPolicy(),
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.store = store
        self.secrets = secrets
        self.pool = pool
        self.hardware = hardware
        self.host_probe = host_probe
        self.board_probe = board_probe
        self.policy = policy
        self.power_policy = power_policy
        self.flash_policy = flash_policy

    # -- the row

    async def _env(self, session: AsyncSession, env_id: int) -> Environment:
        return await environments.get(session=session, ident=env_id, refresh=True)

    async def _step(self, env_id: int, step: str, status: str, **extra: Any) -> None:
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            environments.add_step(env, step, status, **extra)
            await session.commit()

    async def _set(self, env_id: int, **values: Any) -> Environment:
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            for key, value in values.items():
                setattr(env, key, value)
            await session.commit()
            environments.announce(self.bus, env)
            return env

    # -- deploy

    async def deploy(self, env_id: int, say: Say = _quiet) -> None:
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            kind = env.kind
        await self._set(env_id, status=ENV_PROVISIONING, attempt=env.attempt + 1)
        if kind == QEMU:
            await self._deploy_vm(env_id, say)
        else:
            await self._deploy_board(env_id, say)

    async def _vm(self, env_id: int) -> _Vm:
        """The VM's place on its host: chosen once (console port, domain, directory) and kept."""
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            assert env.host_id is not None
            host = await session.get(Host, env.host_id)
            assert host is not None
            if env.domain_name is None or env.console_port is None or env.remote_dir is None:
                free = await self._free_port(session, host.id, host.hostname)
                env.console_port = free
                # A nonce: several labfleets (or databases) may share a host.
                nonce = random.token_hex(4)
                env.domain_name = f"labfleet-env-{env.id}-{nonce}"
                env.remote_dir = str(PurePosixPath(self.policy.deploy_dir) / f"env-{env.id}-{nonce}")
                env.console_url = f"socket://{host.address}:{free}"
                await session.commit()
            try:
                ssh = credentials.ssh_target(self.secrets, host)
            except LabfleetError as exc:
                raise ProvisionFailed(
                    f"host {host.hostname}: its stored SSH access cannot be used: {exc.message}",
                    resource=host.hostname,
                ) from exc
            return _Vm(
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

    async def _free_port(
        self, session: AsyncSession, host_id: int, hostname: str, *, taken: frozenset[int] = frozenset()
    ) -> int:
        """The lowest console port of the range that no environment on the host holds (nor ``taken``)."""
        used = await repo.console_ports_in_use(session, host_id) | taken
        first, last = self.policy.console_ports
        free = next((p for p in range(first, last + 1) if p not in used), None)
        if free is None:
            all_taken = f"every console port {first}-{last} is taken"
            raise ProvisionFailed(f"host {hostname}: {all_taken}", resource=hostname)
        return free

    async def _deploy_vm(self, env_id: int, say: Say) -> None:
        vm = await self._vm(env_id)
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            request = dict(env.request)
            arch = env.architecture
            vcpus, memory = env.vcpus, env.memory_mb
            rows = [
                a for a in [await session.get(Artifact, i) for i in env.artifacts.values()] if a is not None
            ]
        runner = SshRunner(pool=self.pool, target=vm.ssh)
        placed: dict[str, str] = {}
        try:
            vm = await self._port_free_on_host(vm, runner, say)
            with tempfile.TemporaryDirectory(prefix="labfleet-deploy-") as tmp:
                say(f"copying {len(rows)} artifact(s) to {vm.hostname}:{vm.remote_dir}")
                await runner.run(f"mkdir -p {shlex.quote(vm.remote_dir)}", timeout=60)
                for artifact in rows:
                    local = await self._stage(artifact, Path(tmp))
                    remote = f"{vm.remote_dir}/{artifact.type}-{Path(artifact.name).name}"
                    digest = await runner.put(
                        local=local, remote=remote, timeout=self.policy.transfer_timeout_s
                    )
                    say(
                        f"  {artifact.name}: {artifact.size} bytes, sha256 {digest[:16]}… checked on the host"
                    )
                    placed[artifact.type] = remote
            await self._step(env_id, "transfer", "succeeded", files=placed)
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
            async with await LibvirtHost.open(
                vm.libvirt_uri, timeout=self.policy.libvirt_timeout_s
            ) as libvirt:
                await libvirt.define(domain_xml(spec))
            say(f"defined {vm.domain} on {vm.hostname}: {vcpus} vCPU, {memory} MiB, {machine}, {cmdline!r}")
            await self._step(env_id, "define", "succeeded", domain=vm.domain, console_url=vm.console_url)
        except (DeviceError, Corrupted, OSError) as exc:
            reason = exc.message if isinstance(exc, LabfleetError) else str(exc)
            say(f"deploying to {vm.hostname} failed: {reason}; rolling back")
            await self._step(env_id, "deploy", "failed", error=reason)
            await self._remove_vm(vm, say)
            raise ProvisionFailed(
                f"deploying to host {vm.hostname} failed: {reason}", resource=vm.hostname
            ) from exc

    async def _port_free_on_host(self, vm: _Vm, runner: SshRunner, say: Say) -> _Vm:
        """The console port, moved if something on the host listens on it already (another
        labfleet sharing the host, or anything else): ports are only known free per database."""
        taken = await listening_ports(runner, timeout=30)
        if vm.console_port not in taken:
            return vm
        async with self.sessions() as session:
            env = await self._env(session, vm.env_id)
            free = await self._free_port(session, vm.host_id, vm.hostname, taken=taken)
            env.console_port = free
            env.console_url = f"socket://{vm.address}:{free}"
            await session.commit()
        say(f"console port {vm.console_port} is in use on {vm.hostname}: using {free}")
        return await self._vm(vm.env_id)

    async def _stage(self, artifact: Artifact, directory: Path) -> Path:
        path = directory / f"{artifact.id}-{Path(artifact.name).name}"
        async with self.sessions() as session:
            fresh = await session.get(Artifact, artifact.id)
            if fresh is None:
                raise DeviceError(f"artifact {artifact.id} ({artifact.name}) was removed")
            chunks = await artifact_service.open_verified(session=session, store=self.store, artifact=fresh)
            with path.open("wb") as out:
                async for chunk in chunks:
                    await asyncio.to_thread(out.write, chunk)
            await session.commit()
        return path

    async def _deploy_board(self, env_id: int, say: Say) -> None:
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            assert env.board_id is not None
            board = await session.get(Board, env.board_id)
            assert board is not None
            name = board.name
            image = None
            for kind in IMAGE_TYPES:
                if kind in env.artifacts:
                    image = int(env.artifacts[kind])
                    break
            assert image is not None
            job = await flashing.request_flash(
                session=session,
                actor=_actor(env),
                board_id=board.id,
                data=FlashRequest(artifact_id=image, boot_check=False),
                policy=self.flash_policy,
            )
            await session.commit()
            job_id = job.id
        say(f"flashing board {name} with artifact {image} (flash job #{job_id}): write and verify")
        await self._step(env_id, "flash", "running", flash_job=job_id)
        last_phase = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.flash_timeout_s
        while True:
            async with self.sessions() as session:
                job = await flashing.get(session=session, job_id=job_id)
                await session.refresh(job)
                status, phase, error = job.status, job.phase, job.error
            if phase != last_phase and phase:
                say(f"  flash job #{job_id}: {phase}")
                last_phase = phase
            if status in FLASH_FINAL:
                break
            if loop.time() > deadline:
                raise ProvisionFailed(
                    f"board {name}: flash job #{job_id} unfinished after {self.policy.flash_timeout_s:g} s",
                    resource=name,
                )
            await asyncio.sleep(self.policy.poll_s)
        if status != FLASH_SUCCEEDED:
            await self._step(env_id, "flash", status, flash_job=job_id, error=error)
            raise ProvisionFailed(f"board {name}: flash job #{job_id} {status}: {error}", resource=name)
        await self._step(env_id, "flash", "succeeded", flash_job=job_id)
        say(f"board {name} flashed and verified (flash job #{job_id})")

    # -- boot

    async def boot(self, env_id: int, say: Say = _quiet, console_log: Say = _quiet) -> None:
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            kind = env.kind
            boot = dict(env.request.get("boot") or {})
        pattern = boot.get("pattern") or DEFAULT_BOOT_PATTERN
        timeout = float(boot.get("timeout_s") or 300)
        if kind == QEMU:
            await self._boot_vm(env_id, pattern, timeout, say, console_log)
        else:
            await self._boot_board(env_id, pattern, timeout, say)
        await self._set(env_id, status=ENV_READY, ready_at=utcnow(), error=None)
        await self._step(env_id, "boot", "succeeded")

    async def _boot_vm(self, env_id: int, pattern: str, timeout: float, say: Say, console_log: Say) -> None:
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
                    say(f"resumed {vm.domain}; watching the console for {pattern!r} (up to {timeout:g} s)")
                    await console.expect(re.compile(pattern), timeout=timeout)
            say(f"{vm.domain} booted")
        except DeviceError as exc:
            await self._step(env_id, "boot", "failed", error=exc.message)
            say(f"boot on {vm.hostname} failed: {exc.message}")
            raise ProvisionFailed(
                f"booting on host {vm.hostname} failed: {exc.message}", resource=vm.hostname
            ) from exc

    async def _boot_board(self, env_id: int, pattern: str, timeout: float, say: Say) -> None:
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            assert env.board_id is not None
            actor = _actor(env)
            board_id = env.board_id
            board = await session.get(Board, board_id)
            assert board is not None
            name = board.name
            image = next((int(env.artifacts[k]) for k in IMAGE_TYPES if k in env.artifacts), None)
        say(f"power-cycling board {name}; watching its console for {pattern!r} (up to {timeout:g} s)")
        async with self.sessions() as session:
            action = await power.cycle(
                session=session,
                actor=actor,
                hardware=self.hardware,
                board_id=board_id,
                policy=self.power_policy,
                options=PowerCycleIn(boot_timeout_s=timeout, retries=1, boot_pattern=pattern),
                bus=self.bus,
            )
            ok, error, action_id = action.status == POWER_SUCCEEDED, action.error, action.id
            await session.commit()
        if not ok:
            await self._step(env_id, "boot", "failed", power_action=action_id, error=error)
            raise ProvisionFailed(
                f"board {name} did not boot (power action #{action_id}): {error}", resource=name
            )
        say(f"board {name} booted (power action #{action_id})")
        if image is not None:
            async with self.sessions() as session:
                await flashing.record_known_good(session=session, board_id=board_id, artifact_id=image)
                await session.commit()

    # -- console

    async def console(self, env_id: int, log: Callable[[bytes], None] | None = None) -> SerialConsole:
        """The environment's console, not yet open."""
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            url = env.console_url
            if env.board_id is not None:
                board = await session.get(Board, env.board_id)
                url = board.console_url if board is not None else None
        if url is None:
            raise DeviceError(f"environment #{env_id} has no console")
        return SerialConsole(
            ConsolePort(url=url),
            log=log,
            open_timeout=self.policy.console_open_timeout_s,
            name=f"env #{env_id} console",
        )

    # -- health of the resource

    async def check_resource(self, env_id: int, say: Say = _quiet) -> bool:
        """A health check of the environment's host or board, recorded like a periodic one;
        whether it passed."""
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            host = await session.get(Host, env.host_id) if env.host_id else None
            board_target = (
                await board_health.target_of(
                    session=session, secrets=self.secrets, policy=BoardHealthPolicy(), board_id=env.board_id
                )
                if env.board_id
                else None
            )
        if host is not None:
            target = host_health.Target(
                host_id=host.id,
                hostname=host.hostname,
                status=host.status,
                access=HostAccess(name=host.hostname, libvirt_uri=host.libvirt_uri),
            )
            probe = await host_health.probe(
                probe=self.host_probe, target=target, timeout=self.policy.check_timeout_s
            )
            async with self.sessions() as session:
                await host_health.record(session=session, probe=probe, policy=HostHealthPolicy())
                await session.commit()
            say(f"health check of host {host.hostname}: {'passed' if probe.answered else probe.error}")
            return probe.answered
        if board_target is not None:
            reading = await board_health.probe(
                probe=self.board_probe, target=board_target, timeout=self.policy.check_timeout_s
            )
            async with self.sessions() as session:
                await board_health.record(session=session, reading=reading, policy=BoardHealthPolicy())
                await session.commit()
            verdict = "passed" if reading.answered else reading.error
            say(f"health check of board {board_target.name}: {verdict}")
            return reading.answered
        return True

    # -- teardown

    async def teardown(self, env_id: int, say: Say = _quiet, *, reason: str) -> None:
        """Remove what was deployed and give back what was held; safe to repeat."""
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            kind, has_vm = env.kind, env.domain_name is not None and env.host_id is not None
        if kind == QEMU and has_vm:
            # What cannot be reached is said; what the environment held is given back regardless.
            try:
                await self._remove_vm(await self._vm(env_id), say)
            except LabfleetError as exc:
                say(f"environment #{env_id}: could not clean up on its host: {exc.message}")
        async with self.sessions() as session:
            env = await self._env(session, env_id)
            await environments.mark_released(session=session, env=env, reason=reason)
            await session.commit()
            environments.announce(self.bus, env)
        say(f"environment #{env_id} released ({reason})")
        if kind == QEMU and has_vm:
            await self.refresh_usage(env_id)

    async def refresh_usage(self, env_id: int) -> None:
        """The host's utilization sample counted the VM just removed: take a new one now, or
        selection would judge the host by it (and pass it over) until the next periodic check."""
        await self.check_resource(env_id)

    async def _remove_vm(self, vm: _Vm, say: Say) -> None:
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
