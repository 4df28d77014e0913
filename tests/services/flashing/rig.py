"""A flashing rig: a real database of the test's own, a real artifact store, and boards whose flash
station, outlet and console are in memory (the ``FlashHardware`` test seam).

A fake board holds the digest of what was last written; an image listed in ``corrupting``
is written wrong (the driver's read-back fails, as a real one's does), one in
``unbootable`` prints a panic instead of the boot banner when the board is powered on.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labfleet.db.engine import create_engine, session_factory
from labfleet.db.models import Artifact, Board, FlashJob
from labfleet.engine.flashing import FlashWorker
from labfleet.errors import DeviceError
from labfleet.hw.console import ConsoleProtocol
from labfleet.hw.fakes import FakeConsole, FakePower
from labfleet.hw.flash import FlashProtocol, ImageDigest, Phase, Progress
from labfleet.hw.flash.protocol import digest_of, report
from labfleet.hw.power import PowerProtocol
from labfleet.schemas.auth import Actor
from labfleet.schemas.boards import BoardCreate
from labfleet.schemas.enums import Role
from labfleet.schemas.flashing import FlashRequest
from labfleet.secretbox import SecretBox
from labfleet.services.core.events import EventBus
from labfleet.services.flashing import service as flashing
from labfleet.services.flashing.access import FlashWiring
from labfleet.services.flashing.service import FlashPolicy
from labfleet.services.inventory import boards
from labfleet.services.inventory.registration import InputOnly
from labfleet.services.power.access import BoardWiring
from labfleet.storage import LocalStore

BOX = SecretBox(Fernet.generate_key())
ANA = Actor(name="ana", role=Role.operator, team="kernel")
BOB = Actor(name="bob", role=Role.operator)
BANNER = "labfleet-lab: fake booted"
POLICY = FlashPolicy(
    lease_seconds=5.0,
    heartbeat_seconds=0.2,
    progress_interval_s=0.05,
    boot_timeout_s=0.5,
    off_s=0.0,
    command_timeout_s=5.0,
    max_attempts=2,
)
_names = itertools.count(1)


@dataclass
class FakeStation:
    """A board's flash target in memory."""

    corrupting: set[str]
    holds: ImageDigest | None = None
    written: list[str] = field(default_factory=list)
    during_write: Callable[[], Awaitable[None]] | None = None

    async def write(self, image: Path, *, timeout: float, progress: Progress | None = None) -> ImageDigest:
        digest = await digest_of(image)
        report(progress, Phase.STAGE, digest.size, digest.size)
        report(progress, Phase.WRITE, 0, digest.size)
        if self.during_write is not None:
            await self.during_write()
        self.written.append(digest.sha256)
        report(progress, Phase.WRITE, digest.size, digest.size)
        report(progress, Phase.VERIFY, 0, digest.size)
        if digest.sha256 in self.corrupting:
            self.holds = ImageDigest("0" * 64, digest.size)
            raise DeviceError(f"fake: after writing {image.name}, the target does not hold it")
        self.holds = digest
        report(progress, Phase.VERIFY, digest.size, digest.size)
        report(progress, Phase.DONE, digest.size, digest.size)
        return digest

    async def verify(self, expected: ImageDigest, *, timeout: float) -> bool:
        return self.holds == expected

    async def read_version(self, *, timeout: float) -> str | None:
        return None


@dataclass
class FakeOutlet(FakePower):
    station: FakeStation | None = None
    console: FakeConsole | None = None
    unbootable: set[str] = field(default_factory=set)

    async def on(self, *, timeout: float) -> None:
        await super().on(timeout=timeout)
        assert self.station is not None and self.console is not None
        held = self.station.holds
        booted = held is not None and held.sha256 not in self.unbootable and held.sha256 != "0" * 64
        self.console.output += (
            f"\r\nLinux version 6.1\r\n{BANNER}\r\n/ # " if booted else "\r\nKernel panic - not syncing\r\n"
        )


@dataclass
class FakeFlashHardware:
    corrupting: set[str] = field(default_factory=set)
    unbootable: set[str] = field(default_factory=set)
    stations: dict[int, FakeStation] = field(default_factory=dict)
    outlets: dict[int, FakeOutlet] = field(default_factory=dict)

    def station(self, board_id: int) -> FakeStation:
        if board_id not in self.stations:
            station = FakeStation(corrupting=self.corrupting)
            self.stations[board_id] = station
            self.outlets[board_id] = FakeOutlet(
                station=station, console=FakeConsole(), unbootable=self.unbootable
            )
        return self.stations[board_id]

    def flash(self, wiring: FlashWiring) -> FlashProtocol:
        return self.station(wiring.board_id)

    def power(self, wiring: BoardWiring) -> PowerProtocol:
        self.station(wiring.board_id)
        return self.outlets[wiring.board_id]

    def console(self, wiring: BoardWiring) -> ConsoleProtocol | None:
        self.station(wiring.board_id)
        return self.outlets[wiring.board_id].console


@dataclass
class FlashRig:
    sessions: async_sessionmaker[AsyncSession]
    bus: EventBus
    store: LocalStore
    hardware: FakeFlashHardware
    tmp: Path

    async def board(self, *, status: str | None = None, architecture: str = "arm64") -> Board:
        n = next(_names)
        data = BoardCreate.model_validate(
            {
                "name": f"fl-{n}",
                "board_type": "fake",
                "architecture": architecture,
                "serial_number": f"FL-{n}",
                "console_url": "socket://127.0.0.1:1",
                "labels": {"boot-pattern": BANNER},
                "power": {"driver": "command", "on": "true", "off": "true"},
                "flash": {"driver": "dd", "host": "flash-host", "device": "/dev/sdb"},
            }
        )
        async with self.sessions() as session:
            board = await boards.register(
                session=session, actor=ANA, secrets=BOX, validator=InputOnly(), data=data
            )
            if status is not None:
                board.status = status
            await session.commit()
        return board

    async def artifact(
        self, content: bytes, *, architecture: str = "arm64", commit: str = "c0ffee"
    ) -> Artifact:
        n = next(_names)
        path = self.tmp / f"image-{n}.img"
        await asyncio.to_thread(path.write_bytes, content)
        blob = await self.store.put_file(path)
        async with self.sessions() as session:
            row = Artifact(
                sha256=blob.sha256,
                size=blob.size,
                name=f"image-{n}.img",
                type="firmware",
                repository_url="file:///repo",
                branch="main",
                commit=commit,
                architecture=architecture,
            )
            session.add(row)
            await session.commit()
        return row

    async def request(
        self,
        board_id: int,
        artifact_id: int,
        *,
        actor: Actor = ANA,
        policy: FlashPolicy = POLICY,
        **data: object,
    ) -> FlashJob:
        async with self.sessions() as session:
            job = await flashing.request_flash(
                session=session,
                actor=actor,
                board_id=board_id,
                data=FlashRequest.model_validate({"artifact_id": artifact_id, **data}),
                policy=policy,
            )
            await session.commit()
        return job

    def worker(self, policy: FlashPolicy = POLICY, name: str | None = None) -> FlashWorker:
        return FlashWorker(
            sessions=self.sessions,
            bus=self.bus,
            store=self.store,
            secrets=BOX,
            policy=policy,
            hardware=self.hardware,
            poll_seconds=0.1,
            scratch=self.tmp,
            name=name,
        )

    async def job(self, job_id: int) -> FlashJob:
        async with self.sessions() as session:
            return await flashing.get(session=session, job_id=job_id)

    async def fresh_board(self, board_id: int) -> Board:
        async with self.sessions() as session:
            board = await session.get(Board, board_id, populate_existing=True)
            assert board is not None
            return board


@pytest.fixture
async def flash_rig(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[FlashRig]:
    engine = create_engine(fresh_db_url)
    bus = EventBus()
    try:
        yield FlashRig(
            sessions=session_factory(engine),
            bus=bus,
            store=LocalStore(tmp_path / "store"),
            hardware=FakeFlashHardware(),
            tmp=tmp_path,
        )
    finally:
        await bus.close()
        await engine.dispose()
