"""Where the lab keeps things: a state directory (runtime files and keys) and a download cache."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labfleet.lab.layout import REPO_NAME, Board

DEFAULT_STATE_DIR = Path("/var/lib/labfleet-lab")
DEFAULT_CACHE_DIR = Path("/var/cache/labfleet-lab")


def _default_assets() -> Path:
    # The assets are small text files committed at the root of the checkout (src/labfleet/lab/ -> ../../..).
    return Path(__file__).resolve().parents[3] / "lab"


@dataclass(frozen=True, slots=True)
class LabPaths:
    state: Path
    cache: Path
    assets: Path

    @classmethod
    def from_env(cls) -> LabPaths:
        """``LABFLEET_LAB_DIR``, ``LABFLEET_LAB_CACHE`` and ``LABFLEET_LAB_ASSETS``, or the defaults."""
        return cls(
            state=Path(os.environ.get("LABFLEET_LAB_DIR") or DEFAULT_STATE_DIR),
            cache=Path(os.environ.get("LABFLEET_LAB_CACHE") or DEFAULT_CACHE_DIR),
            assets=Path(os.environ.get("LABFLEET_LAB_ASSETS") or _default_assets()),
        )

    def env(self) -> dict[str, str]:
        """The environment that makes another process (the power script) find this same lab."""
        return {
            "LABFLEET_LAB_DIR": str(self.state),
            "LABFLEET_LAB_CACHE": str(self.cache),
            "LABFLEET_LAB_ASSETS": str(self.assets),
        }

    # Keys outlive `lab down`: a labfleet that registered the lab pinned the host key.
    @property
    def keys(self) -> Path:
        return self.state / "keys"

    @property
    def private_key(self) -> Path:
        return self.keys / "lab_ed25519"

    @property
    def host_key(self) -> Path:
        return self.keys / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.keys / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.keys / "known_hosts"

    def runtime(self, name: str) -> Path:
        """A runtime file of the lab (config, pid file, log); removed by `lab down`."""
        return self.state / name

    def board_dir(self, board: Board) -> Path:
        return self.state / board.name

    def boot_image(self, board: Board) -> Path:
        """The board's flash target: the initramfs it boots, which a flash driver may overwrite."""
        return self.board_dir(board) / "boot.img"

    def qemu_pid(self, board: Board) -> Path:
        return self.board_dir(board) / "qemu.pid"

    def console_log(self, board: Board) -> Path:
        """Everything the board printed on its serial console since it was last powered on."""
        return self.board_dir(board) / "console.log"

    def power_log(self, board: Board) -> Path:
        return self.board_dir(board) / "power.log"

    def console_end(self, board: Board) -> Path:
        """The pty end that ser2net serves."""
        return self.state / f"{board.name}.console"

    def qemu_end(self, board: Board) -> Path:
        """The pty end that the board's QEMU serial port is attached to."""
        return self.state / f"{board.name}.qemu"

    def kernel(self, board: Board) -> Path:
        return self.cache / board.deb_arch / "vmlinuz"

    def busybox(self, board: Board) -> Path:
        return self.cache / board.deb_arch / "busybox"

    @property
    def debs(self) -> Path:
        return self.cache / "debs"

    @property
    def initramfs_tree(self) -> Path:
        return self.assets / "initramfs"

    @property
    def repo_source(self) -> Path:
        """The committed source of the lab's git repository."""
        return self.assets / "repo"

    @property
    def git_root(self) -> Path:
        """What git daemon serves (its --base-path)."""
        return self.state / "git"

    @property
    def repo(self) -> Path:
        """The lab's bare git repository."""
        return self.git_root / REPO_NAME

    @property
    def toolchain(self) -> Path:
        """What the repository's build needs on the build server besides its packages."""
        return self.state / "toolchain"

    def toolchain_busybox(self, board: Board) -> Path:
        """The static busybox for the board's architecture: the repository build's default ``BUSYBOX``."""
        return self.toolchain / f"busybox-{board.architecture}"

    def toolchain_kernel(self, board: Board) -> Path:
        """The board's kernel (a copy of :meth:`kernel`): the repository build's default ``KERNEL``."""
        return self.toolchain / f"kernel-{board.architecture}"
