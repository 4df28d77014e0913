"""Debian packages: the ones the lab runs must be installed; kernels and busybox are downloaded once.

Kernels are not installed, only fetched with ``apt-get download`` and unpacked with
``dpkg -x``; the vmlinuz (and a foreign architecture's busybox) stay in the cache, so
a second ``lab up`` downloads nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from labfleet.errors import LabfleetError
from labfleet.lab.layout import DEBIAN_PACKAGES, Board
from labfleet.lab.paths import LabPaths
from labfleet.lab.procs import run

NATIVE_BUSYBOX = Path("/bin/busybox")


def missing_packages(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> list[str]:
    """The packages of the list that are not installed."""
    query = ["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *packages]
    proc = subprocess.run(query, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    installed = {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" ok installed")}
    return [p for p in packages if p not in installed]


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise LabfleetError(
            f"virtual lab: Debian packages missing: {', '.join(missing)}; run scripts/setup --lab"
        )


def native_architecture() -> str:
    return run(["dpkg", "--print-architecture"], what="dpkg", timeout=30).strip()


def _ensure_architecture(arch: str) -> None:
    """Let apt download packages of a foreign architecture (arm64 on an amd64 lab host)."""
    if arch == native_architecture():
        return
    foreign = run(["dpkg", "--print-foreign-architectures"], what="dpkg", timeout=30).split()
    if arch not in foreign:
        run(["dpkg", "--add-architecture", arch], what=f"dpkg --add-architecture {arch}", timeout=60)
        _apt_update()


def _apt_update() -> None:
    run(["apt-get", "update", "-qq"], what="apt-get update", timeout=600)


def _kernel_package(board: Board) -> str:
    """The versioned kernel package (linux-image-6.1.0-NN-arm64) the metapackage depends on today."""
    for attempt in range(2):
        try:
            out = run(["apt-cache", "depends", board.kernel_package], what="apt-cache", timeout=60)
        except LabfleetError:
            out = ""
        for line in out.splitlines():
            kind, _, name = line.strip().partition(": ")
            if kind == "Depends" and name.startswith("linux-image-"):
                return name.split(":")[0]
        if attempt == 0:
            _apt_update()  # the package lists may predate this architecture
    raise LabfleetError(f"virtual lab: no kernel package found for {board.deb_arch} ({board.kernel_package})")


def _download(paths: LabPaths, package: str, arch: str) -> Path:
    """The .deb of ``package`` for ``arch``, from the cache or downloaded into it."""
    paths.debs.mkdir(parents=True, exist_ok=True)
    cached = sorted(paths.debs.glob(f"{package}_*_{arch}.deb"))
    if cached:
        return cached[-1]
    run(
        # apt's sandbox user cannot write into a root-only cache directory.
        ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{package}:{arch}"],
        what=f"apt-get download {package}:{arch}",
        timeout=600,
        cwd=paths.debs,
    )
    cached = sorted(paths.debs.glob(f"{package}_*_{arch}.deb"))
    if not cached:
        raise LabfleetError(f"virtual lab: apt-get download {package}:{arch} left no .deb in {paths.debs}")
    return cached[-1]


def _unpack_one(deb: Path, pattern: str, target: Path) -> None:
    """Unpack ``deb`` and keep the one file matching ``pattern`` as ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".unpack-") as tmp:
        run(["dpkg", "-x", deb, tmp], what=f"dpkg -x {deb.name}", timeout=300)
        found = sorted(Path(tmp).glob(pattern))
        if not found:
            raise LabfleetError(f"virtual lab: {deb.name} has no {pattern}")
        partial = target.with_suffix(".partial")
        shutil.copyfile(found[-1], partial)
        partial.chmod(0o755)
        partial.replace(target)


def fetch_kernel(paths: LabPaths, board: Board) -> Path:
    """The board's Debian kernel, downloaded once."""
    target = paths.kernel(board)
    if target.exists():
        return target
    _ensure_architecture(board.deb_arch)
    deb = _download(paths, _kernel_package(board), board.deb_arch)
    _unpack_one(deb, "boot/vmlinuz-*", target)
    return target


def fetch_busybox(paths: LabPaths, board: Board) -> Path:
    """A static busybox for the board: the installed one when it is the host's architecture."""
    if board.deb_arch == native_architecture():
        if not NATIVE_BUSYBOX.exists():
            raise LabfleetError("virtual lab: /bin/busybox missing; run scripts/setup --lab")
        return NATIVE_BUSYBOX
    target = paths.busybox(board)
    if target.exists():
        return target
    _ensure_architecture(board.deb_arch)
    deb = _download(paths, "busybox-static", board.deb_arch)
    _unpack_one(deb, "bin/busybox", target)
    return target
