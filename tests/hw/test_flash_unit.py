"""Flash drivers' logic through FakeRunner and a recording transfer: the tool command lines,
verification, progress and the errors."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labfleet.errors import CommandFailed, DeviceError, Invalid
from labfleet.hw.commands import CommandResult
from labfleet.hw.fakes import FakeRunner
from labfleet.hw.flash import (
    BlockDevice,
    BlockFlash,
    CommandFlash,
    DfuDevice,
    DfuUtilFlash,
    FastbootFlash,
    FastbootTarget,
    FlashCommands,
    FlashProgress,
    ImageDigest,
    OpenOcdFlash,
    OpenOcdTarget,
    Phase,
)

STAGING = "/var/lib/labfleet/flash"


@dataclass
class RecordingTransfer:
    """Stages nothing; answers with the local file's digest (or a corrupted one) and records calls."""

    corrupt: bool = False
    staged: list[tuple[Path, str]] = field(default_factory=list)

    async def __call__(self, local: Path, remote: str, *, timeout: float) -> str:
        self.staged.append((local, remote))
        digest = hashlib.sha256(await asyncio.to_thread(local.read_bytes)).hexdigest()
        return "0" * 64 if self.corrupt else digest


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "core-image.wic"
    path.write_bytes(b"\x5a" * 3000 + b"end")
    return path


def digest(path: Path) -> ImageDigest:
    return ImageDigest(hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)


def sha256sum_output(path: Path) -> str:
    return f"{digest(path).sha256}  -\n"


# -- block devices (dd, bmaptool) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "write"),
    [
        ("dd", f"dd if={STAGING}/dd-dev-sdb.wic of=/dev/sdb bs=4M conv=fsync,notrunc status=none"),
        ("bmaptool", f"bmaptool copy --nobmap {STAGING}/bmaptool-dev-sdb.wic /dev/sdb"),
    ],
)
async def test_a_block_device_is_written_then_read_back(image: Path, tool: str, write: str) -> None:
    # Validates: 6.3
    runner = (
        FakeRunner(where="flash-1")
        .on(r"^mkdir ", "")
        .on(rf"^{tool} ", "")
        .on(r"sha256sum$", sha256sum_output(image))
    )
    transfer = RecordingTransfer()
    progress: list[FlashProgress] = []
    flash = BlockFlash(BlockDevice(device="/dev/sdb"), runner, transfer, tool=tool)  # type: ignore[arg-type]

    written = await flash.write(image, timeout=60, progress=progress.append)

    assert written == digest(image)
    assert transfer.staged == [(image, f"{STAGING}/{tool}-dev-sdb.wic")]
    assert runner.ran[0] == f"mkdir -p {STAGING}"
    assert runner.ran[1] == write
    assert runner.ran[2] == (
        "test -r /dev/sdb || { echo cannot read /dev/sdb >&2; exit 2; }; "
        "if [ -b /dev/sdb ]; then blockdev --flushbufs /dev/sdb; fi; "
        f"head -c {written.size} /dev/sdb | sha256sum"
    )
    size = written.size
    assert [(p.phase, p.done) for p in progress] == [
        (Phase.STAGE, 0),
        (Phase.STAGE, size),
        (Phase.WRITE, 0),
        (Phase.WRITE, size),
        (Phase.VERIFY, 0),
        (Phase.VERIFY, size),
        (Phase.DONE, size),
    ]
    assert {p.total for p in progress} == {size}


async def test_a_device_that_reads_back_something_else_fails_the_write(image: Path) -> None:
    # Validates: 6.3
    runner = FakeRunner().on(r"^(mkdir|dd) ", "").on(r"sha256sum$", f"{'1' * 64}  -\n")
    flash = BlockFlash(BlockDevice(device="/dev/sdb"), runner, RecordingTransfer())
    with pytest.raises(DeviceError, match="does not hold it"):
        await flash.write(image, timeout=60)
    assert await flash.verify(digest(image), timeout=10) is False


async def test_an_image_changed_in_transfer_is_never_written(image: Path) -> None:
    # Validates: 6.3
    runner = FakeRunner().on(r"^mkdir ", "")
    flash = BlockFlash(BlockDevice(device="/dev/sdb"), runner, RecordingTransfer(corrupt=True))
    with pytest.raises(DeviceError, match="does not match"):
        await flash.write(image, timeout=60)
    assert not any(command.startswith("dd ") for command in runner.ran)


# -- fastboot -----------------------------------------------------------------------------


def fastboot_says(stderr: str, exit_status: int = 0) -> CommandResult:
    return CommandResult(exit_status, "", stderr)


async def test_fastboot_flashes_the_partition_and_checks_it_fits(image: Path) -> None:
    # Validates: 6.3, 8.5
    runner = (
        FakeRunner()
        .on(r"^mkdir ", "")
        .on(r"flash boot_a", fastboot_says("Sending 'boot_a' OKAY\nWriting 'boot_a' OKAY\nFinished."))
        .on(
            r"getvar partition-size",
            fastboot_says("partition-size:boot_a: 0x4000000\nFinished. Total time: 0.001s\n"),
        )
        .on(r"getvar version-bootloader", fastboot_says("version-bootloader: U-Boot 2024.01\nFinished.\n"))
    )
    flash = FastbootFlash(FastbootTarget(partition="boot_a", serial="0123ABCD"), runner, RecordingTransfer())

    written = await flash.write(image, timeout=60)

    assert f"fastboot -s 0123ABCD flash boot_a {STAGING}/fastboot-0123ABCD-boot_a.wic" in runner.ran
    assert "fastboot -s 0123ABCD getvar partition-size:boot_a" in runner.ran
    assert await flash.verify(written, timeout=10) is True
    assert await flash.verify(ImageDigest("f" * 64, written.size), timeout=10) is False
    assert await flash.read_version(timeout=10) == "U-Boot 2024.01"


async def test_fastboot_refuses_an_image_larger_than_the_partition(image: Path) -> None:
    # Validates: 6.3
    runner = (
        FakeRunner()
        .on(r"^mkdir ", "")
        .on(r" flash ", fastboot_says("OKAY"))
        .on(r"getvar partition-size", fastboot_says("partition-size:boot: 0x400\n"))
    )
    with pytest.raises(DeviceError, match="does not hold it"):
        await FastbootFlash(FastbootTarget(), runner, RecordingTransfer()).write(image, timeout=60)


async def test_fastboot_cannot_verify_what_it_did_not_write() -> None:
    # Validates: 6.3
    flash = FastbootFlash(FastbootTarget(), FakeRunner(), RecordingTransfer())
    with pytest.raises(DeviceError, match="cannot read a partition back"):
        await flash.verify(ImageDigest("0" * 64, 1), timeout=10)


async def test_a_bootloader_without_the_variable_has_no_version() -> None:
    # Validates: 8.5
    runner = FakeRunner().on(r"getvar", fastboot_says("FAILED (remote: 'GetVar Variable Not found')", 1))
    assert await FastbootFlash(FastbootTarget(), runner, RecordingTransfer()).read_version(timeout=10) is None
    unplugged = FakeRunner().on(r"getvar", fastboot_says("fastboot: error: no devices found", 1))
    with pytest.raises(CommandFailed):
        await FastbootFlash(FastbootTarget(), unplugged, RecordingTransfer()).read_version(timeout=10)


# -- dfu-util -----------------------------------------------------------------------------


async def test_dfu_util_downloads_then_uploads_to_verify(image: Path) -> None:
    # Validates: 6.3
    runner = (
        FakeRunner()
        .on(r"^mkdir -p \S+$", "")
        .on(r"^dfu-util -d 0483:df11 -a 1 -D ", "")
        .on(r"-U ", sha256sum_output(image))
    )
    flash = DfuUtilFlash(DfuDevice(device="0483:df11", alt=1), runner, RecordingTransfer())
    written = await flash.write(image, timeout=60)
    upload = runner.ran[-1]
    readback = f"{STAGING}/dfu-0483-df11-1.readback"
    assert f"rm -f {readback} && dfu-util -d 0483:df11 -a 1 -U {readback} -Z {written.size} >&2" in upload
    assert f"head -c {written.size} {readback} | sha256sum" in upload
    assert await flash.read_version(timeout=5) is None


# -- openocd ------------------------------------------------------------------------------


async def test_openocd_programs_with_verify_and_the_address_for_raw_binaries(tmp_path: Path) -> None:
    # Validates: 6.3
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"\x00\x20\x00\x20" * 64)
    elf = tmp_path / "fw.elf"
    elf.write_bytes(b"\x7fELF" + b"\x00" * 60)
    runner = (
        FakeRunner().on(r"^mkdir ", "").on(r"^openocd ", "** Programming Finished **\n** Verified OK **\n")
    )
    target = OpenOcdTarget(config="interface/stlink.cfg target/stm32f4x.cfg")
    flash = OpenOcdFlash(target, runner, RecordingTransfer())

    await flash.write(firmware, timeout=60)
    await flash.write(elf, timeout=60)

    configs = "openocd -f interface/stlink.cfg -f target/stm32f4x.cfg"
    staged = f"{STAGING}/openocd-stlink-stm32f4x"
    assert f"{configs} -c 'program {staged}.bin verify reset exit 0x08000000'" in runner.ran
    assert f"{configs} -c 'program {staged}.elf verify reset exit'" in runner.ran


async def test_openocd_verify_compares_the_flash_with_the_staged_image(image: Path) -> None:
    # Validates: 6.3
    def openocd(command: str) -> CommandResult:
        if "verify_image" in command:
            return CommandResult(0, "", "verified 3003 bytes in 0.1s (29 KiB/s)\n")
        return CommandResult(0, "", "")

    runner = (
        FakeRunner().on(r"^mkdir ", "").on(r"^sha256sum ", sha256sum_output(image)).on(r"^openocd ", openocd)
    )
    flash = OpenOcdFlash(OpenOcdTarget(config="board/x.cfg"), runner, RecordingTransfer())
    written = await flash.write(image, timeout=60)
    assert await flash.verify(written, timeout=10) is True
    assert "-c init -c 'reset init' -c 'verify_image /var/lib/labfleet/flash/openocd-x.wic'" in runner.ran[-1]
    assert await flash.verify(ImageDigest("e" * 64, written.size), timeout=10) is False

    mismatch = FakeRunner().on(r"^sha256sum ", sha256sum_output(image))
    mismatch.on(
        r"^openocd ", CommandResult(1, "", "checksum mismatch - attempting binary compare\ndiff 0 address")
    )
    flash._runner = mismatch  # the same staged file, on a board whose flash now differs
    assert await flash.verify(written, timeout=10) is False


# -- site commands --------------------------------------------------------------------------


async def test_site_commands_get_quoted_placeholders(tmp_path: Path) -> None:
    # Validates: 6.3, 8.5
    image = tmp_path / "my image.bin"
    image.write_bytes(b"firmware")
    runner = FakeRunner().on(r"^flash-tool ", "").on(r"^check-tool ", "").on(r"^fw-version ", "v2.1.0\n")
    commands = FlashCommands(
        write="flash-tool --board {board} {image}",
        verify="check-tool {board} {image} {sha256} {size}",
        version="fw-version {board}",
        board="rpi 4",
    )
    flash = CommandFlash(commands, runner)
    written = await flash.write(image, timeout=10)
    assert runner.ran[:2] == [
        f"flash-tool --board 'rpi 4' '{image}'",
        f"check-tool 'rpi 4' '{image}' {written.sha256} 8",
    ]
    assert await flash.read_version(timeout=5) == "v2.1.0"


async def test_a_verify_command_says_yes_no_or_cannot_tell(image: Path) -> None:
    # Validates: 6.3
    for status, outcome in ((0, True), (1, False)):
        runner = FakeRunner().on("write", "").on("verify", "", exit_status=status)
        flash = CommandFlash(FlashCommands(write="write {image}", verify="verify"), runner)
        assert await flash.verify(digest(image), timeout=5) is outcome
    broken = FakeRunner().on("verify", "no such board", exit_status=2)
    with pytest.raises(CommandFailed):
        await CommandFlash(FlashCommands(write="w", verify="verify"), broken).verify(digest(image), timeout=5)


async def test_without_a_verify_command_the_written_digest_is_compared(image: Path) -> None:
    # Validates: 6.3
    flash = CommandFlash(FlashCommands(write="write {image}"), FakeRunner().on("write", ""))
    with pytest.raises(DeviceError, match="no verify command"):
        await flash.verify(digest(image), timeout=5)
    written = await flash.write(image, timeout=5)
    assert await flash.verify(written, timeout=5) is True
    assert await flash.verify(ImageDigest("0" * 64, written.size), timeout=5) is False
    assert await flash.read_version(timeout=5) is None


def test_targets_refuse_what_no_tool_accepts() -> None:
    # Validates: 8.1
    with pytest.raises(Invalid) as bad:
        BlockDevice(device="/dev/sdb; rm -rf /")
    assert bad.value.field == "device"
    with pytest.raises(Invalid):
        BlockDevice(device="/dev/sdb", staging_dir="/tmp/with space")
    with pytest.raises(Invalid):
        DfuDevice(device="usb0")
    with pytest.raises(Invalid):
        OpenOcdTarget(config="board/x.cfg", address="134217728")
    with pytest.raises(Invalid):
        FastbootTarget(partition="boot a")
