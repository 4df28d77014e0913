"""What a machine offers, learned in one round trip: CPUs, memory, disk, load and compilers.

Registration runs ``probe_machine`` over the machine's ``CommandRunner``. One shell
script gathers everything, since over SSH each round trip costs more than the commands
themselves; ``parse_facts`` turns its report into ``MachineFacts`` and is pure, so unit
tests feed it text. A fact the machine cannot give (no ``df`` for a missing path, no
``/proc``) is ``None`` and its reason is listed in ``problems``.
"""

from __future__ import annotations

import os.path
import re
from dataclasses import dataclass

from labfleet.hw.commands import CommandRunner, quote

# A compiler, found on PATH, that is not a wrapper or a binutils-style helper. Names
# resolving to one file (cc, gcc, gcc-12, x86_64-linux-gnu-gcc-12) are reported once,
# under the first name met, in PATH order.
_SCRIPT = r"""LC_ALL=C; export LC_ALL
disk=$1
echo "cpus $(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
echo "machine $(uname -m 2>/dev/null)"
if [ -r /proc/meminfo ]; then
  while read -r k v _; do
    case $k in MemTotal:|MemAvailable:) echo "mem ${k%:} $v";; esac
  done </proc/meminfo
else echo "problem no /proc/meminfo"; fi
if read -r l1 l5 l15 _ </proc/loadavg 2>/dev/null; then echo "load $l1 $l5 $l15"
else echo "problem no /proc/loadavg"; fi
if out=$(df -Pk -- "$disk" 2>&1); then
  echo "$out" | while read -r _ size _ avail _; do
    case $size in *[!0-9]*|'') ;; *) echo "disk $size $avail";; esac
  done
else echo "problem df $disk: $(echo "$out" | head -n 1)"; fi
"""
# Finding the compilers asks each one (``-dumpmachine``, ``-dumpversion``): tens of processes
# on a build server, so only registration and an explicit refresh do it, not every check.
_TOOLCHAINS_SCRIPT = r"""seen=
IFS=:
for dir in $PATH; do
  IFS=' '
  [ -d "$dir" ] || continue
  for f in "$dir"/gcc "$dir"/cc "$dir"/clang "$dir"/*-gcc "$dir"/*-clang \
           "$dir"/gcc-[0-9]* "$dir"/clang-[0-9]* "$dir"/*-gcc-[0-9]*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    case ${f##*/} in c89-gcc|c99-gcc|*-gcc-ar*|*-gcc-nm*|*-gcc-ranlib*) continue;; esac
    real=$(readlink -f -- "$f" 2>/dev/null) || real=$f
    case " $seen " in *" $real "*) continue;; esac
    seen="$seen $real"
    triplet=$("$f" -dumpmachine 2>/dev/null) || continue
    version=$("$f" -dumpfullversion -dumpversion 2>/dev/null) || version=$("$f" -dumpversion 2>/dev/null)
    printf 'toolchain\t%s\t%s\t%s\t%s\n' "$f" "$real" "$triplet" "$version"
  done
done
"""

# Kernel architecture names (``ARCH=`` spellings where they name one word size) by the
# CPU part of a target triplet or ``uname -m``.
_ARCHITECTURES: tuple[tuple[str, str], ...] = (
    (r"x86_64|amd64|x64", "x86_64"),
    (r"i[3-7]86|x86", "i386"),
    (r"aarch64(_be)?|arm64(e)?", "arm64"),
    (r"arm.*|thumb.*", "arm"),
    (r"riscv64.*", "riscv64"),
    (r"riscv32.*", "riscv32"),
    (r"(powerpc64|ppc64)le", "ppc64le"),
    (r"powerpc64|ppc64", "ppc64"),
    (r"powerpc|ppc", "powerpc"),
    (r"s390x", "s390x"),
    (r"mips(isa)?64.*", "mips64"),
    (r"mips.*", "mips"),
    (r"loongarch64", "loongarch64"),
)


def kernel_arch(*, triplet: str) -> str:
    """The kernel architecture a triplet builds for: ``aarch64-linux-gnu`` -> ``arm64``.

    Also takes ``uname -m`` output. An unknown CPU is returned as it is spelt.
    """
    cpu = triplet.strip().split("-", 1)[0].lower()
    for pattern, arch in _ARCHITECTURES:
        if re.fullmatch(pattern, cpu):
            return arch
    return cpu


@dataclass(frozen=True, slots=True)
class Toolchain:
    """A compiler on the machine: ``gcc`` at ``/usr/bin/aarch64-linux-gnu-gcc`` builds for arm64."""

    compiler: str
    path: str
    target_triplet: str
    architecture: str
    version: str
    native: bool


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What the machine offers; sizes in bytes, ``None`` where it could not be learned."""

    cpu_count: int | None
    architecture: str | None
    memory_total_bytes: int | None
    memory_available_bytes: int | None
    disk_path: str
    disk_total_bytes: int | None
    disk_free_bytes: int | None
    load: tuple[float, float, float] | None
    toolchains: tuple[Toolchain, ...]
    problems: tuple[str, ...] = ()


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _family(name: str, real: str) -> str:
    # ``cc`` says nothing; where it leads does (``cc`` -> ``/usr/bin/clang-16``).
    both = f"{os.path.basename(name)} {os.path.basename(real)}"
    return "clang" if "clang" in both else "gcc"


def parse_facts(report: str, *, disk_path: str) -> MachineFacts:
    """``MachineFacts`` from the report of the probe script."""
    fields: dict[str, list[str]] = {}
    memory: dict[str, int] = {}
    problems: list[str] = []
    raw_toolchains: list[list[str]] = []
    for line in report.splitlines():
        if line.startswith("toolchain\t"):
            raw_toolchains.append(line.split("\t")[1:])
            continue
        key, _, rest = line.partition(" ")
        if key == "problem":
            problems.append(rest)
        elif key == "mem":
            name, _, kib = rest.partition(" ")
            if (value := _int(kib)) is not None:
                memory[name] = value * 1024
        elif key:
            fields[key] = rest.split()

    machine = fields.get("machine", [])
    architecture = kernel_arch(triplet=machine[0]) if machine else None
    cpus = fields.get("cpus", [])
    load = fields.get("load", [])
    disk = fields.get("disk", [])

    toolchains: list[Toolchain] = []
    for parts in raw_toolchains:
        if len(parts) < 4 or not parts[2]:
            problems.append(f"unreadable toolchain line: {parts!r}")
            continue
        path, real, triplet, version = parts[:4]
        arch = kernel_arch(triplet=triplet)
        toolchains.append(
            Toolchain(
                compiler=_family(path, real),
                path=path,
                target_triplet=triplet,
                architecture=arch,
                version=version or "unknown",
                native=arch == architecture,
            )
        )
    return MachineFacts(
        cpu_count=_int(cpus[0]) if cpus else None,
        architecture=architecture,
        memory_total_bytes=memory.get("MemTotal"),
        memory_available_bytes=memory.get("MemAvailable"),
        disk_path=disk_path,
        disk_total_bytes=v * 1024 if len(disk) >= 2 and (v := _int(disk[0])) is not None else None,
        disk_free_bytes=v * 1024 if len(disk) >= 2 and (v := _int(disk[1])) is not None else None,
        load=_load(load),
        toolchains=tuple(toolchains),
        problems=tuple(problems),
    )


def _load(words: list[str]) -> tuple[float, float, float] | None:
    try:
        one, five, fifteen = (float(w) for w in words[:3])
    except ValueError:
        return None
    return one, five, fifteen


async def probe_machine(
    *, runner: CommandRunner, disk_path: str = "/", timeout: float = 60.0, toolchains: bool = True
) -> MachineFacts:
    """The facts of the machine behind ``runner``, with the disk of ``disk_path``, in one command;
    without ``toolchains``, only what a health check needs (CPUs, memory, load, disk)."""
    script = _SCRIPT + _TOOLCHAINS_SCRIPT if toolchains else _SCRIPT
    result = await runner.run(f"sh -c {quote(script)} labfleet-probe {quote(disk_path)}", timeout=timeout)
    return parse_facts(result.stdout, disk_path=disk_path)


LISTENING_TCP = "ss -Htln"
"""Listening TCP sockets, no header: ``State Recv-Q Send-Q Local:Port Peer:Port``."""


def parse_listening(ss_output: str) -> frozenset[int]:
    """The local ports of ``ss -Htln`` lines (``0.0.0.0:22``, ``[::]:22``, ``*:80``)."""
    ports = set()
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and (port := fields[3].rpartition(":")[2]).isdigit():
            ports.add(int(port))
    return frozenset(ports)


async def listening_ports(runner: CommandRunner, *, timeout: float) -> frozenset[int]:
    """The TCP ports something listens on, on the machine ``runner`` reaches; none if ``ss`` fails."""
    result = await runner.run(LISTENING_TCP, timeout=timeout, check=False)
    return parse_listening(result.stdout)
