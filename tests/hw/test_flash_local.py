"""Flashing for real on this machine: dd into an image file through LocalRunner, with a local copy
as the transfer, and site commands writing files; then verifying by reading back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from labfleet.errors import CommandFailed
from labfleet.hw.commands import LocalRunner
from labfleet.hw.flash import FlashDeps, FlashProgress, ImageDigest, Phase, build_flash


async def local_copy(local: Path, remote: str, *, timeout: float) -> str:
    """The transfer of a flash host that is this machine: copy under a temporary name, rename, hash."""

    def copy() -> str:
        partial = Path(f"{remote}.partial")
        shutil.copyfile(local, partial)
        partial.rename(remote)
        with Path(remote).open("rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    return await asyncio.wait_for(asyncio.to_thread(copy), timeout)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "artifacts" / "rootfs.ext4"
    path.parent.mkdir()
    # Not a multiple of dd's block size, so the last block is a short one.
    path.write_bytes(os.urandom(5 * 1024 * 1024 + 12345))
    return path


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """An 8 MiB "disk" full of 0xAA, larger than the image."""
    path = tmp_path / "sd-card.img"
    path.write_bytes(b"\xaa" * 8 * 1024 * 1024)
    return path


async def test_dd_writes_the_image_and_reads_it_back(image: Path, target: Path, tmp_path: Path) -> None:
    # Validates: 6.3
    deps = FlashDeps(runner=LocalRunner(), transfer=local_copy)
    flash = build_flash("dd", {"device": str(target), "staging_dir": str(tmp_path / "staging")}, deps)
    progress: list[FlashProgress] = []

    written = await flash.write(image, timeout=60, progress=progress.append)

    data = await asyncio.to_thread(image.read_bytes)
    assert written == ImageDigest(hashlib.sha256(data).hexdigest(), len(data))
    on_disk = await asyncio.to_thread(target.read_bytes)
    assert on_disk[: len(data)] == data
    assert on_disk[len(data) :] == b"\xaa" * (8 * 1024 * 1024 - len(data))  # written in place, not truncated
    assert [p.phase for p in progress] == [
        Phase.STAGE,
        Phase.STAGE,
        Phase.WRITE,
        Phase.WRITE,
        Phase.VERIFY,
        Phase.VERIFY,
        Phase.DONE,
    ]
    assert progress[-1] == FlashProgress(Phase.DONE, len(data), len(data))
    assert await flash.verify(written, timeout=30) is True
    assert (await flash.read_version(timeout=5)) is None


async def test_verify_finds_a_corrupted_target(image: Path, target: Path, tmp_path: Path) -> None:
    # Validates: 6.3
    deps = FlashDeps(runner=LocalRunner(), transfer=local_copy)
    flash = build_flash("dd", {"device": str(target), "staging_dir": str(tmp_path / "staging")}, deps)
    written = await flash.write(image, timeout=60)

    with target.open("r+b") as disk:
        disk.seek(written.size // 2)
        byte = disk.read(1)
        disk.seek(written.size // 2)
        disk.write(bytes([byte[0] ^ 0x01]))

    assert await flash.verify(written, timeout=30) is False


async def test_a_missing_target_fails_the_write(image: Path, tmp_path: Path) -> None:
    # Validates: 6.3
    deps = FlashDeps(runner=LocalRunner(), transfer=local_copy)
    missing = tmp_path / "no-such-dir" / "disk.img"
    flash = build_flash("dd", {"device": str(missing), "staging_dir": str(tmp_path / "staging")}, deps)
    with pytest.raises(CommandFailed, match="no-such-dir"):
        await flash.write(image, timeout=60)


async def test_site_commands_write_verify_and_tell_the_version(image: Path, tmp_path: Path) -> None:
    # Validates: 6.3, 8.5
    board_dir = tmp_path / "boards"
    board_dir.mkdir()
    commands = {
        "write": f"cp {{image}} {board_dir}/{{board}}.fw && echo v1.4.2 > {board_dir}/{{board}}.version",
        "verify": f'test "$(sha256sum < {board_dir}/{{board}}.fw | cut -d" " -f1)" = {{sha256}}',
        "version": f"cat {board_dir}/{{board}}.version",
        "board": "rpi-7",
    }
    flash = build_flash("command", commands, FlashDeps(runner=LocalRunner()))

    written = await flash.write(image, timeout=30)

    copied, original = await asyncio.gather(
        asyncio.to_thread((board_dir / "rpi-7.fw").read_bytes), asyncio.to_thread(image.read_bytes)
    )
    assert copied == original
    assert await flash.verify(written, timeout=10) is True
    assert await flash.read_version(timeout=10) == "v1.4.2"
    (board_dir / "rpi-7.fw").write_bytes(b"something else")
    assert await flash.verify(written, timeout=10) is False
