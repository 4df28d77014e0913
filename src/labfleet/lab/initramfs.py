"""A board's boot image: the committed tree under ``lab/initramfs`` plus busybox, as a gzipped newc cpio."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from labfleet.errors import CommandFailed, LabfleetError


def require_tree(tree: Path) -> None:
    if not (tree / "init").is_file():
        raise LabfleetError(f"virtual lab: {tree}/init not found; set LABFLEET_LAB_ASSETS to the repo's lab/")


def build(tree: Path, busybox: Path, target: Path) -> Path:
    """Write the boot image to ``target`` (atomically) and return it."""
    require_tree(tree)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="labfleet-initramfs-") as tmp:
        root = Path(tmp) / "root"
        shutil.copytree(tree, root, symlinks=True)
        (root / "init").chmod(0o755)
        (root / "bin").mkdir(exist_ok=True)
        shutil.copyfile(busybox, root / "bin" / "busybox")
        (root / "bin" / "busybox").chmod(0o755)
        # The kernel opens /dev/console for init before anything is mounted.
        (root / "dev").mkdir(exist_ok=True)
        os.mknod(root / "dev" / "console", stat.S_IFCHR | 0o600, os.makedev(5, 1))
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        cpio = ["cpio", "--create", "--format=newc", "--owner=0:0", "--quiet"]
        proc = subprocess.run(  # noqa: S603 - fixed argv; cpio from PATH like every Debian tool here
            cpio,
            input="\n".join([".", *names]).encode() + b"\n",
            capture_output=True,
            cwd=root,
            check=False,
        )
        if proc.returncode != 0:
            raise CommandFailed(
                f"virtual lab: cpio failed building {target}: {proc.stderr.decode(errors='replace')}",
                exit_status=proc.returncode,
                stderr=proc.stderr.decode(errors="replace"),
            )
    partial = target.with_suffix(".partial")
    partial.write_bytes(gzip.compress(proc.stdout, compresslevel=9, mtime=0))
    partial.replace(target)
    return target
