"""Enumerations of the domain. Status display (label, colour) lives in the status tables."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Role(IntEnum):
    """Roles are ordered: each one can do everything the one below can."""

    viewer = 10
    operator = 20
    admin = 30

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; one of {', '.join(r.name for r in cls)}") from None


class ResourceKind(StrEnum):
    build_server = "build_server"
    host = "host"
    board = "board"


class ServerStatus(StrEnum):
    """Status of a build server or QEMU host (R2.1, R12)."""

    online = "online"
    degraded = "degraded"
    offline = "offline"
    maintenance = "maintenance"
    decommissioned = "decommissioned"


class BoardStatus(StrEnum):
    online = "online"
    degraded = "degraded"
    offline = "offline"
    maintenance = "maintenance"
    flashing = "flashing"
    failed = "failed"
    decommissioned = "decommissioned"


class Architecture(StrEnum):
    """Kernel architecture names; common aliases are accepted on input."""

    x86_64 = "x86_64"
    i386 = "i386"
    arm64 = "arm64"
    arm = "arm"
    riscv64 = "riscv64"
    ppc64le = "ppc64le"
    s390x = "s390x"
    mips64 = "mips64"


ARCHITECTURE_ALIASES: dict[str, Architecture] = {
    "amd64": Architecture.x86_64,
    "x86-64": Architecture.x86_64,
    "aarch64": Architecture.arm64,
    "armhf": Architecture.arm,
    "armel": Architecture.arm,
    "armv7": Architecture.arm,
    "i686": Architecture.i386,
    "x86": Architecture.i386,
    "ppc64el": Architecture.ppc64le,
    "riscv": Architecture.riscv64,
}
