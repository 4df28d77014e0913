"""What differs between the kinds of environment while it is chosen and reserved (R11).

A QEMU environment is a VM on a host of the pool, sized in vCPUs and memory; a board
environment is a whole board. Each kind checks artifacts against the target it would be
placed on, says what to reserve, and names what it is placed on; ``service.create`` uses
them the same way for both. The device work of each kind is its target's (``targets/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.models import Board, Host, Reservation
from labfleet.db.models.environments import BOARD, QEMU
from labfleet.db.repositories import environments as repo
from labfleet.errors import Invalid, NotFound
from labfleet.schemas.environments import EnvironmentCreate, Requirements
from labfleet.schemas.reservations import AutoBoard, AutoHost, ReservationCreate
from labfleet.services.environments.compatibility import (
    ArtifactFacts,
    BoardFacts,
    HostFacts,
    Problem,
    check_board,
    check_qemu,
)


async def host(session: AsyncSession, host_id: int) -> Host:
    found = await session.get(Host, host_id)
    if found is None:
        raise NotFound(f"no host with id {host_id}", field="target")
    return found


async def board(session: AsyncSession, board_id: int) -> Board:
    found = await session.get(Board, board_id)
    if found is None:
        raise NotFound(f"no board with id {board_id}", field="target")
    return found


class Kind(Protocol):
    noun: str
    """What an environment of this kind is placed on ("host", "board")."""

    def check(
        self, artifacts: Sequence[ArtifactFacts], arch: str, req: Requirements, on: Any | None
    ) -> list[Problem]:
        """Problems deploying ``artifacts``; ``on``: the host or board chosen, once it is."""
        ...

    async def placed_on(self, session: AsyncSession, reservation: Reservation) -> Any:
        """The host or board the reservation holds."""
        ...

    async def ask(
        self, session: AsyncSession, data: EnvironmentCreate, common: dict[str, Any]
    ) -> ReservationCreate:
        """What to reserve for ``data``: the target it names, or the best one (``auto``)."""
        ...

    def size(self, req: Requirements) -> tuple[int, int]:
        """The vCPUs and MiB of memory the environment takes on its target (0 for a whole board)."""
        ...

    def build_lacks(self, types: set[str]) -> str | None:
        """Why a pipeline whose build makes artifacts of ``types`` could never deploy, if it could not."""
        ...


class VmKind:
    noun = "host"

    def check(
        self, artifacts: Sequence[ArtifactFacts], arch: str, req: Requirements, on: Host | None
    ) -> list[Problem]:
        facts = HostFacts(on.hostname, on.machine_types or {}) if on is not None else None
        return check_qemu(artifacts, architecture=arch, machine=req.machine, host=facts)

    async def placed_on(self, session: AsyncSession, reservation: Reservation) -> Host:
        assert reservation.host_id is not None
        return await host(session, reservation.host_id)

    async def ask(
        self, session: AsyncSession, data: EnvironmentCreate, common: dict[str, Any]
    ) -> ReservationCreate:
        req = data.requirements
        if data.target == "auto":
            auto = AutoHost(
                auto="host",
                architecture=data.architecture,
                kvm=req.kvm,
                vcpus=req.vcpus,
                memory_mb=req.memory_mb,
                labels=req.labels,
            )
            return ReservationCreate(target=auto, **common)
        named = await repo.host_named(session, data.target)
        if named is None:
            raise Invalid(f"no host named {data.target!r}", field="target")
        return ReservationCreate(host_id=named.id, vcpus=req.vcpus, memory_mb=req.memory_mb, **common)

    def size(self, req: Requirements) -> tuple[int, int]:
        return req.vcpus, req.memory_mb

    def build_lacks(self, types: set[str]) -> str | None:
        return (
            None if "kernel" in types else "a qemu pipeline boots a kernel: list the build's kernel artifact"
        )


class BoardKind:
    noun = "board"

    def check(
        self, artifacts: Sequence[ArtifactFacts], arch: str, req: Requirements, on: Board | None
    ) -> list[Problem]:
        facts = BoardFacts(on.name, on.architecture, on.board_type) if on is not None else None
        return check_board(artifacts, architecture=arch, board_type=req.board_type, board=facts)

    async def placed_on(self, session: AsyncSession, reservation: Reservation) -> Board:
        assert reservation.board_id is not None
        return await board(session, reservation.board_id)

    async def ask(
        self, session: AsyncSession, data: EnvironmentCreate, common: dict[str, Any]
    ) -> ReservationCreate:
        req = data.requirements
        if data.target == "auto":
            auto = AutoBoard(
                auto="board",
                architecture=data.architecture,
                board_type=req.board_type,
                peripherals=req.peripherals,
                labels=req.labels,
            )
            return ReservationCreate(target=auto, **common)
        named = await repo.board_named(session, data.target)
        if named is None:
            raise Invalid(f"no board named {data.target!r}", field="target")
        return ReservationCreate(board_id=named.id, **common)

    def size(self, req: Requirements) -> tuple[int, int]:
        return 0, 0

    def build_lacks(self, types: set[str]) -> str | None:
        return None  # which image it flashes is checked when its environment is made


KINDS: dict[str, Kind] = {QEMU: VmKind(), BOARD: BoardKind()}
