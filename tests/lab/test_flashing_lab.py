"""Flashing a lab board as a durable job: dd over SSH as root into the board's boot image, power
through the real pdudaemon, the boot watched on its real console; then a bad image that does not
boot, rolled back automatically to the known-good one, which boots again.

The board's original boot image is put back and the board powered on again at the end,
whatever happened.

Validates: 6.2, 6.3, 6.4, 6.5
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Artifact, Board
from labfleet.engine.flashing import FlashWorker
from labfleet.hw.console import ConsolePort, SerialConsole
from labfleet.lab import initramfs, packages
from labfleet.schemas.auth import Actor
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.enums import Role
from labfleet.schemas.flashing import FlashRequest
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.flashing import service as flashing
from labfleet.services.flashing.service import FlashPolicy
from labfleet.services.inventory import boards
from labfleet.services.inventory.registration import InputOnly
from labfleet.storage import LocalStore
from tests.lab.conftest import VirtualLab, on

pytestmark = pytest.mark.lab

BOX = SecretBox(Fernet.generate_key())
OPERATOR = Actor(name="lab-operator", role=Role.operator)
NAME = "lab-arm64"  # boots in about two seconds
POLICY = FlashPolicy(
    write_timeout_s=300.0,
    boot_timeout_s=20.0,  # ten times its boot: the bad image is given up on sooner
    off_s=1.0,
    command_timeout_s=60.0,
    lease_seconds=60.0,
    heartbeat_seconds=2.0,
)


async def pdu(lab: VirtualLab, action: str, outlet: int) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.get(
            f"{lab.pdu_url}/power/control/{action}", params={"hostname": lab.pdu_name, "port": outlet}
        )
        response.raise_for_status()


@pytest.fixture
async def restored(lab: VirtualLab) -> AsyncIterator[Path]:
    """The board's boot image; put back as it was, and the board booted again, at the end."""
    board = lab.board(NAME)
    device = lab.boot_image(board)
    original = await asyncio.to_thread(device.read_bytes)
    try:
        yield device
    finally:
        await asyncio.to_thread(device.write_bytes, original)
        async with SerialConsole(ConsolePort(url=board.console_url), name=board.name) as console:
            await pdu(lab, "off", board.outlet)
            await asyncio.sleep(1)
            await console.read(timeout=0)
            await pdu(lab, "on", board.outlet)
            await console.expect(board.banner, timeout=120)


@on("postgresql")
async def test_a_flash_boots_and_a_bad_one_is_rolled_back_to_the_known_good_image(
    lab: VirtualLab, restored: Path, fresh_db_url: str, tmp_path: Path
) -> None:
    # Validates: 6.2, 6.3, 6.4, 6.5
    board = lab.board(NAME)
    device = restored
    original_size = device.stat().st_size
    tree = tmp_path / "tree"
    await asyncio.to_thread(shutil.copytree, lab.paths.initramfs_tree, tree)
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc" / "flashed").write_text(uuid.uuid4().hex + "\n")
    busybox = await asyncio.to_thread(packages.fetch_busybox, lab.paths, board)
    built = await asyncio.to_thread(initramfs.build, tree, busybox, tmp_path / "good.img")
    # dd writes in place (conv=notrunc): padded with NULs (which the kernel skips between
    # archives) so that nothing of the image written before is left after it.
    good_bytes = built.read_bytes()
    good_bytes += b"\0" * max(0, original_size - len(good_bytes))
    good = tmp_path / "good-padded.img"
    good.write_bytes(good_bytes)
    bad = tmp_path / "bad.img"
    bad.write_bytes(os.urandom(len(good_bytes) // 2))

    engine = create_engine(fresh_db_url)
    sessions = session_factory(engine)
    store = LocalStore(tmp_path / "store")
    bus = EventBus()
    try:
        async with sessions() as session:
            row = await boards.register(
                session=session,
                actor=OPERATOR,
                secrets=BOX,
                validator=InputOnly(),
                data=BoardCreate.model_validate(
                    {
                        "name": board.name,
                        "board_type": board.board_type,
                        "architecture": board.architecture,
                        "serial_number": board.serial_number,
                        "console_url": board.console_url,
                        "labels": {"boot-pattern": board.banner},
                        "power": {
                            "driver": "pdudaemon",
                            "url": lab.pdu_url,
                            "pdu": lab.pdu_name,
                            "outlet": board.outlet,
                        },
                        "flash": {
                            "driver": "dd",
                            "host": lab.host,
                            "ssh_port": lab.ssh_port,
                            "ssh_user": "root",
                            "device": str(device),
                            "secret": {"private_key": lab.private_key.read_text()},
                        },
                    }
                ),
            )
            artifacts = []
            for path, commit in ((good, "good-1"), (bad, "bad-2")):
                blob = await store.put_file(path)
                artifact = Artifact(
                    sha256=blob.sha256,
                    size=blob.size,
                    name=path.name,
                    type="initramfs",
                    repository_url=lab.repo_url,
                    branch="main",
                    commit=commit,
                    architecture=board.architecture,
                )
                session.add(artifact)
                artifacts.append(artifact)
            await session.commit()
            board_id = row.id
            good_id, bad_id = artifacts[0].id, artifacts[1].id

        worker = FlashWorker(
            sessions=sessions, bus=bus, store=store, secrets=BOX, policy=POLICY, scratch=tmp_path
        )

        async def flash(artifact_id: int) -> tuple[str, str | None, list[dict[str, object]], Board]:
            async with sessions() as session:
                job = await flashing.request_flash(
                    session=session,
                    actor=OPERATOR,
                    board_id=board_id,
                    data=FlashRequest(artifact_id=artifact_id),
                    policy=POLICY,
                )
                await session.commit()
            assert job.boot_check
            [done] = await worker.run_once()
            async with sessions() as session:
                after = await session.get(Board, board_id)
                assert after is not None
            return done.status, done.error, done.detail["steps"], after

        status, error, steps, after = await flash(good_id)
        assert status == "succeeded", error
        boots = [s for s in steps if s["step"] == "boot" and s["status"] == "succeeded"]
        assert boots and boots[0]["attempts"][-1]["seen"] == board.banner  # type: ignore[index]
        assert (after.status, after.firmware_version, after.known_good_artifact_id) == (
            "online",
            "good-1",
            good_id,
        )
        assert (await asyncio.to_thread(device.read_bytes))[: len(good_bytes)] == good_bytes

        status, error, steps, after = await flash(bad_id)
        assert status == "rolled_back", error
        assert error is not None and "did not boot" in error
        rolled = [(s["step"], s["status"], s.get("target")) for s in steps]
        assert ("boot", "failed", "image") in rolled
        assert ("boot", "succeeded", "known-good image") in rolled
        assert (after.status, after.firmware_version, after.known_good_artifact_id) == (
            "online",
            "good-1",
            good_id,
        )
        assert (await asyncio.to_thread(device.read_bytes))[: len(good_bytes)] == good_bytes
    finally:
        await bus.close()
        await engine.dispose()
