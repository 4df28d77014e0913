"""The virtual lab for the tests: brought up once per session and down at the end.

Tests of other packages may use it too: ``from tests.lab.conftest import lab  # noqa: F401``
in their conftest. The lab needs root and the packages of ``scripts/setup --lab``; when
it cannot come up the tests that use it fail with the reason, they are never skipped.
A lab that was already up when the session started is left up.

The lab is one set of devices, so its tests run one at a time (tests/conftest.py). A lab
test whose point is the devices and the whole stack runs on one database (``on(...)``):
the demo's SQLite for the pipelines a newcomer runs first, PostgreSQL where several
processes or workers share the work. What the database does in those flows is the same
service code that tests/engine and tests/services run on both backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import BuildServer
from labfleet.errors import LabfleetError
from labfleet.hw.ssh import SshPool
from labfleet.lab import layout
from labfleet.lab.layout import Board
from labfleet.lab.libvirt import ssh_uri
from labfleet.lab.paths import LabPaths
from labfleet.lab.repo import ssh_url
from labfleet.lab.status import LabStatus, status
from labfleet.lab.up import down, up
from labfleet.schemas.auth import SYSTEM
from labfleet.schemas.build_servers import BuildServerCreate
from labfleet.secretbox import SecretBox
from labfleet.services.inventory import build_servers
from labfleet.services.inventory.device_checks import DeviceChecks


def on(backend: str) -> pytest.MarkDecorator:
    """Run a lab test on one backend only (see the module's docstring)."""
    return pytest.mark.parametrize("backend", [backend], indirect=True)


@dataclass(frozen=True)
class VirtualLab:
    """Where the lab's parts are, for tests to reach them as labfleet would."""

    paths: LabPaths
    host: str  # every part listens on loopback
    ssh_port: int  # the build server's sshd (labbuild, and root for libvirt and dd flashing)
    build_user: str
    private_key: Path  # accepted for build_user and root
    known_hosts: Path  # sshd's host key, for clients that pin it
    libvirt_uri: str  # qemu:///system
    libvirt_ssh_uri: str  # qemu+ssh://root@127.0.0.1:23022/system?keyfile=...&no_verify=1
    pdu_url: str  # pdudaemon's HTTP API
    pdu_name: str  # the PDU in pdudaemon's configuration
    boards: tuple[Board, ...]  # name, console_url, outlet, banner, architecture, ...
    repo_url: str  # git://127.0.0.1:23418/labfleet-lab.git, the lab's repository (git daemon)
    repo_ssh_url: str  # the same over the build server's sshd, for clients holding private_key
    repo_branch: str  # main

    @classmethod
    def of(cls, paths: LabPaths) -> VirtualLab:
        return cls(
            paths=paths,
            host=layout.LOOPBACK,
            ssh_port=layout.SSH_PORT,
            build_user=layout.BUILD_USER,
            private_key=paths.private_key,
            known_hosts=paths.known_hosts,
            libvirt_uri=layout.LOCAL_LIBVIRT_URI,
            libvirt_ssh_uri=ssh_uri(paths),
            pdu_url=layout.PDU_URL,
            pdu_name=layout.PDU_NAME,
            boards=layout.BOARDS,
            repo_url=layout.REPO_URL,
            repo_ssh_url=ssh_url(paths),
            repo_branch=layout.REPO_BRANCH,
        )

    def board(self, name: str) -> Board:
        return layout.board_named(name)

    def boot_image(self, board: Board) -> Path:
        """The board's flash target: the file its power-on boots."""
        return self.paths.boot_image(board)

    def busybox(self, board: Board) -> Path:
        """The static busybox for the board's architecture that the repository's build takes by default."""
        return self.paths.toolchain_busybox(board)

    def status(self) -> LabStatus:
        return status(self.paths)

    def up(self) -> None:
        bring_up(self.paths)

    def down(self) -> None:
        down(self.paths)


def bring_up(paths: LabPaths) -> None:
    try:
        up(paths)
    except LabfleetError as exc:
        pytest.fail(f"the virtual lab did not come up: {exc.message}", pytrace=False)


@pytest.fixture(scope="session")
def lab() -> Iterator[VirtualLab]:
    paths = LabPaths.from_env()
    was_up = status(paths).up
    bring_up(paths)
    yield VirtualLab.of(paths)
    if not was_up:
        down(paths)


async def register_build_server(
    lab: VirtualLab, session: AsyncSession, pool: SshPool, box: SecretBox, *, slots: int = 2
) -> BuildServer:
    """The lab's sshd registered as build server ``lab-build``, probed for real, committed."""
    server = await build_servers.register(
        session=session,
        actor=SYSTEM,
        secrets=box,
        validator=DeviceChecks(pool=pool, timeout=30),
        data=BuildServerCreate.model_validate(
            {
                "hostname": "lab-build",
                "address": lab.host,
                "max_concurrent_builds": slots,
                "ssh": {
                    "username": lab.build_user,
                    "port": lab.ssh_port,
                    "private_key": lab.private_key.read_text(),
                },
            }
        ),
    )
    await session.commit()
    return server
