"""Checked file copies over SFTP, against the in-process SSH server (which serves this machine's
file system, so the "remote" files are files under ``tmp_path``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from labfleet.errors import CommandFailed, DeviceError, Timeout
from labfleet.hw.commands import CommandResult
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.hw.ssh_sftp import get_file, put_file


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _flip_first_byte(path: Path) -> None:
    with path.open("r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))


def _random_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class TamperingRunner:
    """Runs commands over SSH, but damages ``victim`` just before the first one: a disk that
    corrupts what it stores, or a file replaced while it is being copied.
    """

    def __init__(self, runner: SshRunner, victim: Path) -> None:
        self.where = runner.where
        self._runner = runner
        self._victim = victim
        self._done = False

    async def run(self, command: str, *, timeout: float, check: bool = True) -> CommandResult:
        result = await self._runner.run(command, timeout=timeout, check=check)
        if not self._done:
            self._done = True
            _flip_first_byte(self._victim)
        return result


class CorruptingRunner(TamperingRunner):
    """Damages ``victim`` before the first command runs instead of after."""

    async def run(self, command: str, *, timeout: float, check: bool = True) -> CommandResult:
        if not self._done:
            self._done = True
            _flip_first_byte(self._victim)
        return await self._runner.run(command, timeout=timeout, check=check)


async def test_put_copies_the_file_and_returns_its_checksum_verified_remotely(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    # Validates: 5.2, 4.2
    local = tmp_path / "Image"
    digest = _random_file(local, 3 * 1024 * 1024 + 7)
    remote = tmp_path / "tftp" / "Image"
    remote.parent.mkdir()
    assert await ssh_runner.put(local=local, remote=str(remote), timeout=60) == digest
    assert remote.read_bytes() == local.read_bytes()
    assert _names(remote.parent) == ["Image"]


async def test_put_replaces_an_existing_file(ssh_runner: SshRunner, tmp_path: Path) -> None:
    local = tmp_path / "rootfs.cpio"
    digest = _random_file(local, 4096)
    remote = tmp_path / "remote.cpio"
    remote.write_bytes(b"the previous image")
    assert await ssh_runner.put(local=local, remote=str(remote), timeout=60) == digest
    assert hashlib.sha256(remote.read_bytes()).hexdigest() == digest


async def test_get_copies_the_file_and_returns_its_checksum_verified_against_the_remote(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    # Validates: 4.2
    remote = tmp_path / "build" / "vmlinux"
    remote.parent.mkdir()
    digest = _random_file(remote, 2 * 1024 * 1024 + 3)
    local = tmp_path / "artifacts" / "vmlinux"
    local.parent.mkdir()
    assert await ssh_runner.get(remote=str(remote), local=local, timeout=60) == digest
    assert local.read_bytes() == remote.read_bytes()
    assert _names(local.parent) == ["vmlinux"]


async def test_a_file_corrupted_on_the_remote_disk_is_refused_naming_both_checksums(
    ssh_pool: SshPool, ssh_runner: SshRunner, ssh_target: SshTarget, tmp_path: Path
) -> None:
    # Validates: 5.2, 4.2
    local = tmp_path / "Image"
    digest = _random_file(local, 100_000)
    remote = tmp_path / "remote-Image"
    part = tmp_path / "remote-Image.labfleet-part"
    with pytest.raises(DeviceError, match="checksum mismatch") as refused:
        await put_file(
            pool=ssh_pool,
            runner=CorruptingRunner(ssh_runner, part),
            target=ssh_target,
            local=local,
            remote=str(remote),
            timeout=60,
        )
    data = local.read_bytes()
    corrupted = hashlib.sha256(bytes([data[0] ^ 0xFF]) + data[1:]).hexdigest()
    assert f"local sha256 {digest}" in refused.value.message
    assert f"remote sha256 {corrupted}" in refused.value.message
    # Nothing under the real name, and no leftovers.
    assert not remote.exists() and not part.exists()


async def test_a_remote_file_that_changes_during_download_is_refused(
    ssh_pool: SshPool, ssh_runner: SshRunner, ssh_target: SshTarget, tmp_path: Path
) -> None:
    # Validates: 4.2
    remote = tmp_path / "vmlinux"
    digest = _random_file(remote, 100_000)
    local = tmp_path / "local-vmlinux"
    with pytest.raises(DeviceError, match="checksum mismatch") as refused:
        await get_file(
            pool=ssh_pool,
            runner=TamperingRunner(ssh_runner, remote),
            target=ssh_target,
            remote=str(remote),
            local=local,
            timeout=60,
        )
    assert f"remote sha256 {digest}" in refused.value.message
    assert not local.exists() and not (tmp_path / "local-vmlinux.labfleet-part").exists()


async def test_getting_a_missing_remote_file_fails_and_leaves_nothing_behind(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    local = tmp_path / "out"
    with pytest.raises(CommandFailed, match=r"No such file|cannot open|can't open"):
        await ssh_runner.get(remote=str(tmp_path / "missing"), local=local, timeout=30)
    assert _names(tmp_path) == []


async def test_putting_into_a_missing_remote_directory_fails(ssh_runner: SshRunner, tmp_path: Path) -> None:
    local = tmp_path / "Image"
    _random_file(local, 10)
    with pytest.raises(DeviceError, match="file transfer failed"):
        await ssh_runner.put(local=local, remote=str(tmp_path / "no" / "such" / "dir" / "Image"), timeout=30)


async def test_a_copy_that_cannot_finish_in_time_raises_timeout(
    ssh_runner: SshRunner, tmp_path: Path
) -> None:
    remote = tmp_path / "big"
    _random_file(remote, 8 * 1024 * 1024)
    local = tmp_path / "big-copy"
    with pytest.raises(Timeout, match="did not finish within"):
        await ssh_runner.get(remote=str(remote), local=local, timeout=0.01)
    assert not local.exists() and not (tmp_path / "big-copy.labfleet-part").exists()
