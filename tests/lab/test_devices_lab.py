"""The device drivers against the virtual lab's real daemons: sshd, libvirtd + QEMU,
ser2net, pdudaemon, and a board's boot image as its flash target.

Validates: 1.3, 5.3, 5.4, 6.3, 6.5, 7.5, 18.1, 18.2
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.hw.flash import FlashDeps, build_flash
from labfleet.hw.flash.protocol import digest_of
from labfleet.hw.libvirt import DomainSpec, LibvirtHost, domain_xml
from labfleet.hw.power import PowerDeps, build_power
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab

# libvirt runs QEMU as its own user and chowns what it boots: give it copies in its own place.
IMAGES = Path("/var/lib/libvirt/images")


@pytest.fixture
async def pool() -> AsyncIterator[SshPool]:
    async with SshPool() as p:
        yield p


async def runner(lab: VirtualLab, pool: SshPool, user: str) -> SshRunner:
    target = SshTarget(
        host=lab.host, port=lab.ssh_port, username=user, private_key=lab.private_key.read_text()
    )
    host_key = await pool.host_key(target, timeout=30)
    return SshRunner(pool=pool, target=replace(target, host_key=host_key))


async def test_the_build_server_cross_compiles_over_ssh(
    lab: VirtualLab, pool: SshPool, tmp_path: Path
) -> None:
    build = await runner(lab, pool, lab.build_user)
    source = tmp_path / "hello.c"
    source.write_text('#include <stdio.h>\nint main(void) { puts("hello from arm64"); return 0; }\n')
    workdir = f"/tmp/lf-test-{uuid.uuid4().hex[:8]}"
    await build.run(f"mkdir -p {workdir}", timeout=10)
    try:
        digest = await build.put(local=source, remote=f"{workdir}/hello.c", timeout=30)
        assert len(digest) == 64
        await build.run(f"cd {workdir} && aarch64-linux-gnu-gcc -static -O2 -o hello hello.c", timeout=120)
        header = await build.run(f"aarch64-linux-gnu-readelf -h {workdir}/hello", timeout=10)
        assert "AArch64" in header.stdout
        back = tmp_path / "hello"
        assert len(await build.get(remote=f"{workdir}/hello", local=back, timeout=30)) == 64
        assert back.read_bytes()[:4] == b"\x7fELF"
    finally:
        await build.run(f"rm -rf {workdir}", timeout=10)


@pytest.mark.parametrize("uri", ["local", "ssh"])
async def test_libvirt_reports_what_the_host_can_emulate(lab: VirtualLab, uri: str) -> None:
    # Validates: 7.5
    async with await LibvirtHost.open(lab.libvirt_uri if uri == "local" else lab.libvirt_ssh_uri) as host:
        caps = await host.capabilities()
        stats = await host.stats()
    assert {"x86_64", "arm64"} <= set(caps.machine_types)
    assert "virt" in caps.machine_types["arm64"]
    assert stats.cpu_cores >= 1 and stats.memory_mb > 0


async def test_a_vm_defined_from_generated_xml_boots_to_its_console(lab: VirtualLab) -> None:
    # Validates: 5.3, 5.4
    board = lab.board("lab-arm64")
    name = f"lf-test-{uuid.uuid4().hex[:8]}"
    files = IMAGES / name
    files.mkdir(parents=True)
    shutil.copy(lab.paths.kernel(board), files / "vmlinuz")
    shutil.copy(lab.boot_image(board), files / "initrd.img")
    spec = DomainSpec(
        name=name,
        architecture="arm64",
        machine="virt",
        cpu_model="cortex-a57",
        vcpus=1,
        memory_mb=256,
        kernel=str(files / "vmlinuz"),
        initrd=str(files / "initrd.img"),
        cmdline=f"console=ttyAMA0 quiet panic=-1 labfleet_board={name}",
        console_port=23101,
    )
    async with await LibvirtHost.open(lab.libvirt_uri) as host:
        await host.define(domain_xml(spec))
        try:
            await host.start(name)
            url = await host.console_url(name)
            assert url == "socket://127.0.0.1:23101"
            async with SerialConsole(ConsolePort(url=url), name=name) as console:
                await console.expect(f"labfleet-lab: {name} booted", timeout=60)
                result = await console.run("uname -m", timeout=20)
            assert result.exit_status == 0
            assert result.output.strip() == "aarch64"
        finally:
            await host.destroy(name)
            await host.undefine(name)
            shutil.rmtree(files, ignore_errors=True)
        assert name not in {d.name for d in await host.domains()}


async def test_flashing_a_board_writes_its_boot_image_verified_and_it_boots(
    lab: VirtualLab, pool: SshPool, tmp_path: Path
) -> None:
    # Validates: 6.3, 6.5, 18.2
    board = lab.board("lab-arm64")
    image = tmp_path / "boot.img"
    shutil.copy(lab.boot_image(board), image)
    root = await runner(lab, pool, "root")

    async def transfer(local: Path, remote: str, *, timeout: float) -> str:
        return await root.put(local=local, remote=remote, timeout=timeout)

    flash = build_flash(
        "dd", {"device": str(lab.boot_image(board))}, FlashDeps(runner=root, transfer=transfer)
    )
    phases: list[str] = []
    digest = await flash.write(image, timeout=120, progress=lambda p: phases.append(str(p)))
    assert digest == await digest_of(image)
    assert phases
    assert await flash.verify(digest, timeout=60)

    async with httpx.AsyncClient(timeout=30) as http:
        power = build_power(
            "pdudaemon",
            {"url": lab.pdu_url, "pdu": lab.pdu_name, "outlet": board.outlet},
            PowerDeps(http=http),
        )
        async with SerialConsole(ConsolePort(url=board.console_url), name=board.name) as console:
            await power.cycle(1.0, timeout=60)
            await console.expect(board.banner, timeout=60)
            result = await console.run("echo flashed-and-booted", timeout=20)
    assert result.output.strip() == "flashed-and-booted"
