"""What registration learns about a build server: parsing with a fake runner, then the real script
over SSH against this machine (which has gcc and aarch64-linux-gnu-gcc installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labfleet.hw.fakes import FakeRunner
from labfleet.hw.probe import MachineFacts, Toolchain, kernel_arch, parse_facts, probe_machine
from labfleet.hw.ssh import SshRunner

REPORT = "\n".join(
    [
        "cpus 64",
        "machine aarch64",
        "mem MemTotal 263856128",
        "mem MemAvailable 200000000",
        "load 3.50 2.25 1.00",
        "disk 1953513472 976756736",
        "toolchain\t/usr/bin/gcc\t/usr/bin/aarch64-linux-gnu-gcc-12\taarch64-linux-gnu\t12.2.0",
        "toolchain\t/usr/bin/x86_64-linux-gnu-gcc\t/usr/bin/x86_64-linux-gnu-gcc-12\tx86_64-linux-gnu\t12.2.0",
        "toolchain\t/usr/bin/cc\t/usr/lib/llvm-16/bin/clang\taarch64-unknown-linux-gnu\t16.0.6",
        "toolchain\t/opt/rv/bin/riscv64-unknown-linux-gnu-gcc\t/opt/rv/bin/riscv64-unknown-linux-gnu-gcc"
        "\triscv64-unknown-linux-gnu\t13.2.0",
        "",
    ]
)


async def test_the_probe_reports_cpus_memory_disk_load_and_toolchains() -> None:
    # Validates: 1.3
    runner = FakeRunner().on("labfleet-probe", REPORT)
    facts = await probe_machine(runner=runner, disk_path="/srv/builds")
    assert len(runner.ran) == 1, "one round trip"
    assert "/srv/builds" in runner.ran[0]
    assert facts == MachineFacts(
        cpu_count=64,
        architecture="arm64",
        memory_total_bytes=263856128 * 1024,
        memory_available_bytes=200000000 * 1024,
        disk_path="/srv/builds",
        disk_total_bytes=1953513472 * 1024,
        disk_free_bytes=976756736 * 1024,
        load=(3.5, 2.25, 1.0),
        toolchains=(
            Toolchain("gcc", "/usr/bin/gcc", "aarch64-linux-gnu", "arm64", "12.2.0", native=True),
            Toolchain(
                "gcc", "/usr/bin/x86_64-linux-gnu-gcc", "x86_64-linux-gnu", "x86_64", "12.2.0", native=False
            ),
            Toolchain("clang", "/usr/bin/cc", "aarch64-unknown-linux-gnu", "arm64", "16.0.6", native=True),
            Toolchain(
                "gcc",
                "/opt/rv/bin/riscv64-unknown-linux-gnu-gcc",
                "riscv64-unknown-linux-gnu",
                "riscv64",
                "13.2.0",
                native=False,
            ),
        ),
    )


@pytest.mark.parametrize(
    ("triplet", "arch"),
    [
        ("x86_64-linux-gnu", "x86_64"),
        ("x86_64-pc-linux-gnu", "x86_64"),
        ("aarch64-linux-gnu", "arm64"),
        ("aarch64-none-elf", "arm64"),
        ("arm-linux-gnueabihf", "arm"),
        ("armv7l", "arm"),
        ("arm-none-eabi", "arm"),
        ("riscv64-linux-gnu", "riscv64"),
        ("powerpc64le-linux-gnu", "ppc64le"),
        ("ppc64le", "ppc64le"),
        ("s390x-linux-gnu", "s390x"),
        ("mips64el-linux-gnuabi64", "mips64"),
        ("mipsisa64r6el-linux-gnuabi64", "mips64"),
        ("i686-linux-gnu", "i386"),
        ("i386", "i386"),
        ("xtensa-esp32-elf", "xtensa"),
    ],
)
def test_a_target_triplet_names_the_kernel_architecture_it_builds_for(triplet: str, arch: str) -> None:
    # Validates: 1.3
    assert kernel_arch(triplet=triplet) == arch


def test_what_the_machine_cannot_tell_is_none_with_the_reason() -> None:
    facts = parse_facts(
        "cpus 4\nmachine x86_64\nproblem no /proc/meminfo\n"
        "problem df /srv: df: /srv: No such file or directory\n",
        disk_path="/srv",
    )
    assert facts.cpu_count == 4
    assert facts.memory_total_bytes is None and facts.disk_total_bytes is None and facts.load is None
    assert facts.toolchains == ()
    assert facts.problems == ("no /proc/meminfo", "df /srv: df: /srv: No such file or directory")


def _gcc(name: str, flag: str) -> str:
    return subprocess.run([name, flag], capture_output=True, text=True, check=True).stdout.strip()


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise LookupError(key)


async def test_the_probe_over_ssh_finds_this_machines_compilers_and_resources(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    # Validates: 1.2, 1.3
    facts = await probe_machine(runner=ssh_runner, disk_path=str(tmp_path))
    assert facts.problems == ()
    assert facts.architecture == "x86_64"
    assert facts.cpu_count == len(os.sched_getaffinity(0))
    assert facts.memory_total_bytes == _meminfo_kib("MemTotal") * 1024
    usage = shutil.disk_usage(tmp_path)
    assert facts.disk_total_bytes is not None and abs(facts.disk_total_bytes - usage.total) < 1024
    assert facts.disk_free_bytes is not None and 0 < facts.disk_free_bytes <= usage.total
    assert facts.load is not None and all(x >= 0 for x in facts.load)

    by_arch = {t.architecture: t for t in facts.toolchains if t.compiler == "gcc"}
    native, cross = by_arch["x86_64"], by_arch["arm64"]
    assert (native.target_triplet, native.native) == (_gcc("gcc", "-dumpmachine"), True)
    assert native.version == _gcc("gcc", "-dumpfullversion")
    assert cross.path.endswith("/aarch64-linux-gnu-gcc")
    assert (cross.target_triplet, cross.native) == ("aarch64-linux-gnu", False)
    assert cross.version == _gcc("aarch64-linux-gnu-gcc", "-dumpfullversion")
    # gcc, cc, gcc-12 and x86_64-linux-gnu-gcc are one compiler: reported once.
    assert [t.architecture for t in facts.toolchains].count("x86_64") == 1


async def test_a_health_check_s_probe_asks_no_compiler_and_tells_the_rest(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    # Validates: 2.1 (a check refreshes capacity; toolchains are registration's)
    full = await probe_machine(runner=ssh_runner, disk_path=str(tmp_path))
    light = await probe_machine(runner=ssh_runner, disk_path=str(tmp_path), toolchains=False)
    assert full.toolchains and light.toolchains == ()
    assert (light.cpu_count, light.architecture, light.memory_total_bytes) == (
        full.cpu_count,
        full.architecture,
        full.memory_total_bytes,
    )
    assert light.disk_total_bytes == full.disk_total_bytes and light.load is not None
    assert light.problems == ()


def _fake_compiler(path: Path, *, triplet: str, version: str, full_version: bool = True) -> None:
    dump_full = f'echo "{version}"; exit 0' if full_version else "exit 1"
    path.write_text(
        "#!/bin/sh\n"
        f'case "$1" in -dumpmachine) echo "{triplet}";; -dumpfullversion) {dump_full};; '
        f'-dumpversion) echo "{version}";; *) exit 2;; esac\n'
    )
    path.chmod(0o755)


async def test_the_probe_takes_every_compiler_on_path_once_and_skips_helpers(
    ssh_runner: SshRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validates: 1.3
    bin_dir = tmp_path / "toolchains" / "bin"
    bin_dir.mkdir(parents=True)
    _fake_compiler(bin_dir / "riscv64-linux-gnu-gcc", triplet="riscv64-linux-gnu", version="13.2.0")
    (bin_dir / "riscv64-linux-gnu-gcc-13").symlink_to("riscv64-linux-gnu-gcc")
    _fake_compiler(bin_dir / "riscv64-linux-gnu-gcc-ar", triplet="bogus", version="0")
    _fake_compiler(bin_dir / "c99-gcc", triplet="bogus", version="0")
    _fake_compiler(
        bin_dir / "clang-17", triplet="powerpc64le-unknown-linux-gnu", version="17", full_version=False
    )
    _fake_compiler(bin_dir / "arm-linux-gnueabihf-gcc", triplet="arm-linux-gnueabihf", version="12.2.0")
    # The in-process server's commands inherit this process's environment, PATH included.
    monkeypatch.setenv("PATH", f"{bin_dir}:{bin_dir}:{os.environ['PATH']}")

    facts = await probe_machine(runner=ssh_runner, disk_path="/")
    ours = {t.path.rsplit("/", 1)[1]: t for t in facts.toolchains if t.path.startswith(str(bin_dir))}
    assert sorted(ours) == ["arm-linux-gnueabihf-gcc", "clang-17", "riscv64-linux-gnu-gcc"]
    assert (ours["riscv64-linux-gnu-gcc"].architecture, ours["riscv64-linux-gnu-gcc"].version) == (
        "riscv64",
        "13.2.0",
    )
    assert (ours["clang-17"].compiler, ours["clang-17"].architecture, ours["clang-17"].version) == (
        "clang",
        "ppc64le",
        "17",
    )
    assert ours["arm-linux-gnueabihf-gcc"].architecture == "arm"
    assert {"x86_64", "arm64"} <= {t.architecture for t in facts.toolchains}
