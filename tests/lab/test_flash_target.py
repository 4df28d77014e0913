"""Each board's boot image is a flash target: written with dd over SSH, checked, then booted."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import asyncssh
import httpx
import pytest

from labfleet.lab import initramfs, packages
from tests.lab.conftest import VirtualLab
from tests.lab.console import Console

pytestmark = pytest.mark.lab


def power(lab: VirtualLab, action: str, outlet: int) -> None:
    response = httpx.get(
        f"{lab.pdu_url}/power/control/{action}", params={"hostname": lab.pdu_name, "port": outlet}, timeout=30
    )
    assert response.status_code == 200, response.text


async def dd_over_ssh(lab: VirtualLab, image: bytes, device: Path) -> str:
    """Write ``image`` to ``device`` as a dd flash driver does; the sha256 read back."""
    async with asyncssh.connect(
        lab.host,
        lab.ssh_port,
        username="root",
        client_keys=[str(lab.private_key)],
        known_hosts=str(lab.known_hosts),
        connect_timeout=10,
    ) as conn:
        await conn.run(f"dd of={device} bs=1M conv=fsync status=none", input=image, encoding=None, check=True)
        result = await conn.run(f"sha256sum {device}", check=True, timeout=30)
        return str(result.stdout).split()[0]


async def test_flashed_image_is_what_the_board_boots(lab: VirtualLab, tmp_path: Path) -> None:
    board = lab.board("lab-arm64")  # boots in about two seconds
    device = lab.boot_image(board)
    original = device.read_bytes()
    token = uuid.uuid4().hex
    tree = tmp_path / "tree"
    shutil.copytree(lab.paths.initramfs_tree, tree)
    (tree / "etc").mkdir(exist_ok=True)
    (tree / "etc" / "flashed").write_text(token + "\n")
    busybox = packages.fetch_busybox(lab.paths, board)
    image = initramfs.build(tree, busybox, tmp_path / "boot.img").read_bytes()

    try:
        assert await dd_over_ssh(lab, image, device) == hashlib.sha256(image).hexdigest()
        with Console(board.console_url) as console:
            console.drain()
            power(lab, "off", board.outlet)
            power(lab, "on", board.outlet)
            console.expect(board.banner.encode(), timeout=60)
            console.expect(b"# ", timeout=10)
            console.send("cat /etc/flashed")
            console.expect(f"\n{token}\r\n".encode(), timeout=5)
    finally:
        device.write_bytes(original)
        power(lab, "off", board.outlet)
        power(lab, "on", board.outlet)
