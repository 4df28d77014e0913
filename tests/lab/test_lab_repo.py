"""The lab's git repository: the build server clones it, builds boot images for x86_64 and arm64
with real compilers, and the images boot, with the kernel the build outputs, to a console that
says what they were built from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.hw.libvirt import DomainSpec, LibvirtHost, domain_xml
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.lab.layout import Board
from labfleet.lab.paths import LabPaths
from labfleet.lab.repo import publish
from tests.lab.conftest import VirtualLab

pytestmark = pytest.mark.lab

# libvirt runs QEMU as its own user and chowns what it boots: give it copies in its own place.
IMAGES = Path("/var/lib/libvirt/images")
# How `readelf -h` names each architecture's machine.
ELF_MACHINE = {"x86_64": "Advanced Micro Devices X86-64", "arm64": "AArch64"}
CROSS_COMPILE = {"x86_64": "", "arm64": "aarch64-linux-gnu-"}
# Ports of their own, so these guests never take the console of another test's.
CONSOLE_PORT = {"x86_64": 23111, "arm64": 23112}


@pytest.fixture
async def build(lab: VirtualLab) -> AsyncIterator[SshRunner]:
    async with SshPool() as pool:
        target = SshTarget(
            host=lab.host,
            port=lab.ssh_port,
            username=lab.build_user,
            private_key=lab.private_key.read_text(),
        )
        host_key = await pool.host_key(target, timeout=30)
        yield SshRunner(pool=pool, target=replace(target, host_key=host_key))


def git(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    return done.stdout.strip()


def test_lab_up_commits_the_source_once(lab: VirtualLab) -> None:
    repo = ("--git-dir", str(lab.paths.repo))
    main = git(*repo, "rev-parse", lab.repo_branch)
    count = git(*repo, "rev-list", "--count", lab.repo_branch)
    # Nothing changed since the lab came up: the same commit, no new one.
    assert publish(lab.paths) == main
    assert git(*repo, "rev-list", "--count", lab.repo_branch) == count
    # "<mode> <type> <hash>\t<path>" per file
    files = {
        path: meta.split()[0]
        for meta, path in (line.split("\t") for line in git(*repo, "ls-tree", "-r", main).splitlines())
    }
    assert files["init"] == "100755"
    assert {"Makefile", "README.md", "src/labfleet-hello.c", "tools/mkcpio.c"} <= set(files)


def test_a_changed_source_is_a_new_commit_and_the_same_source_the_same_hash(tmp_path: Path) -> None:
    source = LabPaths.from_env().repo_source
    assets = tmp_path / "assets"
    shutil.copytree(source, assets / "repo")
    one = LabPaths(state=tmp_path / "one", cache=tmp_path / "cache", assets=assets)
    two = LabPaths(state=tmp_path / "two", cache=tmp_path / "cache", assets=assets)
    first = publish(one)
    assert publish(one) == first
    assert publish(two) == first  # fixed author and date: a repository made again has the same hash

    (assets / "repo" / "init").write_text((assets / "repo" / "init").read_text() + "# changed\n")
    second = publish(one)
    assert second != first
    assert git("--git-dir", str(one.repo), "rev-parse", f"{second}^") == first
    assert publish(one) == second


def test_the_repository_is_served_over_ssh_too(lab: VirtualLab) -> None:
    ssh = f"ssh -i {lab.private_key} -o IdentitiesOnly=yes -o UserKnownHostsFile={lab.known_hosts}"
    heads = git("ls-remote", "--heads", lab.repo_ssh_url, env={"GIT_SSH_COMMAND": ssh})
    main = git("--git-dir", str(lab.paths.repo), "rev-parse", lab.repo_branch)
    assert heads == f"{main}\trefs/heads/{lab.repo_branch}"


async def test_the_build_server_builds_boot_images_that_boot_and_say_their_commit(
    lab: VirtualLab, build: SshRunner, tmp_path: Path
) -> None:
    workdir = f"/tmp/lf-repo-{uuid.uuid4().hex[:8]}"
    try:
        await build.run(
            f"git clone --quiet {lab.repo_url} {workdir}"
            f" && cd {workdir} && git checkout --quiet {lab.repo_branch}",
            timeout=60,
        )
        commit = (await build.run(f"cd {workdir} && git rev-parse HEAD", timeout=10)).stdout.strip()
        assert commit == git("--git-dir", str(lab.paths.repo), "rev-parse", lab.repo_branch)

        images: dict[str, tuple[Path, Path]] = {}
        for board in lab.boards:
            arch = board.architecture
            make = f"make ARCH={arch} BUSYBOX={lab.busybox(board)} KERNEL={lab.paths.toolchain_kernel(board)}"
            if CROSS_COMPILE[arch]:
                make += f" CROSS_COMPILE={CROSS_COMPILE[arch]}"
            await build.run(f"cd {workdir} && {make}", timeout=300)
            out = f"{workdir}/out/{arch}"

            header = await build.run(f"readelf -h {out}/labfleet-hello", timeout=10)
            assert ELF_MACHINE[arch] in header.stdout
            assert "EXEC (Executable file)" in header.stdout  # static, not a PIE needing a loader

            manifest = (await build.run(f"cat {out}/manifest.txt", timeout=10)).stdout.splitlines()
            listed = {name: (int(size), sha) for name, size, sha in (line.split() for line in manifest)}
            assert set(listed) == {"kernel", "initramfs.cpio.gz", "labfleet-hello"}
            fetched = {}
            for name in ("kernel", "initramfs.cpio.gz"):
                local = tmp_path / f"{arch}-{name}"
                digest = await build.get(remote=f"{out}/{name}", local=local, timeout=60)
                assert digest == hashlib.sha256(local.read_bytes()).hexdigest()
                assert listed[name] == (local.stat().st_size, digest)
                fetched[name] = local
            # The kernel the lab installed for the build: the lab's own Debian kernel of the board.
            assert fetched["kernel"].read_bytes() == lab.paths.kernel(board).read_bytes()
            images[arch] = (fetched["kernel"], fetched["initramfs.cpio.gz"])

        # Built for arm64 with the cross compiler, booted under TCG with the kernel the build output.
        await boot_and_check(lab, lab.board("lab-arm64"), *images["arm64"], commit)
        await boot_and_check(lab, lab.board("lab-x86"), *images["x86_64"], commit)
    finally:
        await build.run(f"rm -rf {workdir}", timeout=30)


async def boot_and_check(lab: VirtualLab, board: Board, kernel: Path, image: Path, commit: str) -> None:
    """Boot ``kernel`` with ``image`` as a guest shaped like ``board``: its console names the commit,
    then a shell answers."""
    arch = board.architecture
    name = f"lf-repo-{arch.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    files = IMAGES / name
    files.mkdir(parents=True)
    shutil.copy(kernel, files / "vmlinuz")
    shutil.copy(image, files / "initrd.img")
    machine = board.machine[board.machine.index("-machine") + 1]
    cpu = board.machine[board.machine.index("-cpu") + 1]
    spec = DomainSpec(
        name=name,
        architecture=arch,
        machine=machine,
        cpu_model=cpu,
        vcpus=1,
        memory_mb=256,
        kernel=str(files / "vmlinuz"),
        initrd=str(files / "initrd.img"),
        cmdline=f"console={board.console_device} quiet panic=-1 labfleet_board={name}",
        console_port=CONSOLE_PORT[arch],
    )
    async with await LibvirtHost.open(lab.libvirt_uri) as host:
        await host.define(domain_xml(spec))
        try:
            await host.start(name)
            url = await host.console_url(name)
            assert url == f"socket://127.0.0.1:{CONSOLE_PORT[arch]}"
            async with SerialConsole(ConsolePort(url=url), name=name) as console:
                await console.expect(f"labfleet-hello: built for {arch} from {commit}", timeout=90)
                await console.expect(f"labfleet-lab: {name} booted", timeout=30)
                result = await console.run("uname -m; labfleet-hello", timeout=20)
            assert result.exit_status == 0
            assert result.output.splitlines()[0] == {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
            assert f"labfleet-hello: built for {arch} from {commit}" in result.output
        finally:
            await host.destroy(name)
            await host.undefine(name)
            shutil.rmtree(files, ignore_errors=True)
        assert name not in {d.name for d in await host.domains()}
