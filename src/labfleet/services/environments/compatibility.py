"""Whether artifacts can be deployed to a target, checked before anything moves (R5.1, R6.1; property 6).

Pure: every problem is returned with the request field it concerns, so the API answers 422
naming them all and nothing is reserved, copied or flashed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from labfleet.hw.qemu import DEFAULT_MACHINE

IMAGE_TYPES = ("initramfs", "rootfs", "firmware")
"""What a board can be flashed with, in order of preference."""


@dataclass(frozen=True, slots=True)
class ArtifactFacts:
    id: int
    name: str
    type: str
    architecture: str


@dataclass(frozen=True, slots=True)
class HostFacts:
    name: str
    machine_types: Mapping[str, Collection[str]]  # by architecture


@dataclass(frozen=True, slots=True)
class BoardFacts:
    name: str
    architecture: str
    board_type: str


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    reason: str


def machine_for(architecture: str, asked: str | None) -> str | None:
    return asked or DEFAULT_MACHINE.get(architecture)


def check_qemu(
    artifacts: Sequence[ArtifactFacts], *, architecture: str, machine: str | None, host: HostFacts | None
) -> list[Problem]:
    """Problems deploying ``artifacts`` as a VM of ``architecture`` (on ``host``, when chosen)."""
    problems = _architecture(artifacts, architecture)
    types = {a.type for a in artifacts}
    if "kernel" not in types:
        problems.append(Problem("artifacts", "a VM boots a kernel: the build has no artifact of type kernel"))
    if not types & {"initramfs", "rootfs"}:
        problems.append(Problem("artifacts", "a VM needs an initramfs or a rootfs: the build has neither"))
    wanted = machine_for(architecture, machine)
    if wanted is None:
        problems.append(
            Problem("requirements.machine", f"no default QEMU machine for {architecture}; name one")
        )
    elif host is not None:
        offered = host.machine_types.get(architecture, ())
        if not offered:
            problems.append(Problem("target", f"host {host.name} cannot run {architecture} guests"))
        elif wanted not in offered:
            problems.append(
                Problem(
                    "requirements.machine",
                    f"host {host.name} has no QEMU machine {wanted!r} for {architecture}",
                )
            )
    return problems


def check_board(
    artifacts: Sequence[ArtifactFacts], *, architecture: str, board_type: str | None, board: BoardFacts | None
) -> list[Problem]:
    """Problems flashing ``artifacts`` to a board of ``architecture`` (``board``, when chosen)."""
    problems = _architecture(artifacts, architecture)
    if image_of(artifacts) is None:
        problems.append(
            Problem(
                "artifacts",
                f"a board is flashed with an image ({', '.join(IMAGE_TYPES)}): the build has none",
            )
        )
    if board is not None:
        if board.architecture != architecture:
            problems.append(
                Problem("target", f"board {board.name} is {board.architecture}, not {architecture}")
            )
        if board_type is not None and board.board_type != board_type:
            problems.append(
                Problem(
                    "requirements.board_type",
                    f"board {board.name} is a {board.board_type}, not a {board_type}",
                )
            )
    return problems


def image_of(artifacts: Sequence[ArtifactFacts]) -> ArtifactFacts | None:
    """The artifact a board is flashed with."""
    for kind in IMAGE_TYPES:
        for artifact in artifacts:
            if artifact.type == kind:
                return artifact
    return None


def _architecture(artifacts: Sequence[ArtifactFacts], architecture: str) -> list[Problem]:
    if not artifacts:
        return [Problem("artifacts", "the build has no artifacts")]
    return [
        Problem("artifacts", f"artifact {a.id} ({a.name}) is built for {a.architecture}, not {architecture}")
        for a in artifacts
        if a.architecture != architecture
    ]
