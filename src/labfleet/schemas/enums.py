"""Enumerations of the domain.

A resource's status is shown as its status table says (label, colour); a work status
carries its label and colour with it, in the same palette.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Self


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


class WorkStatus(StrEnum):
    """A status of work that runs and ends: the value stored, and how to show it (NetBox style)."""

    _value_: str
    label: str
    colour: str

    # The defaults are never used: they let a type checker accept a lookup by value, Status("queued").
    def __new__(cls, value: str, label: str = "", colour: str = "") -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.colour = colour
        return member


# Build jobs also refer to a table of these, build_job_statuses, seeded by the migrations:
# the two must agree.
class BuildJobStatus(WorkStatus):
    queued = "queued", "Queued", "grey"
    running = "running", "Running", "blue"
    succeeded = "succeeded", "Succeeded", "green"
    failed = "failed", "Failed", "red"
    cancelled = "cancelled", "Cancelled", "orange"


class FlashJobStatus(WorkStatus):
    queued = "queued", "Queued", "grey"
    running = "running", "Running", "blue"
    succeeded = "succeeded", "Succeeded", "green"
    failed = "failed", "Failed", "red"
    rolled_back = "rolled_back", "Rolled back", "orange"


class PowerActionStatus(WorkStatus):
    running = "running", "Running", "blue"
    succeeded = "succeeded", "Succeeded", "green"
    failed = "failed", "Failed", "red"


class PipelineStatus(WorkStatus):
    queued = "queued", "Queued", "grey"
    running = "running", "Running", "blue"
    succeeded = "succeeded", "Succeeded", "green"
    failed = "failed", "Failed", "red"
    cancelled = "cancelled", "Cancelled", "orange"


class StageStatus(WorkStatus):
    pending = "pending", "Pending", "grey"
    running = "running", "Running", "blue"
    succeeded = "succeeded", "Succeeded", "green"
    failed = "failed", "Failed", "red"
    skipped = "skipped", "Skipped", "grey"
    cancelled = "cancelled", "Cancelled", "orange"


class TestResultStatus(WorkStatus):
    __test__ = False  # not a pytest class

    passed = "passed", "Passed", "green"
    failed = "failed", "Failed", "red"


class EnvironmentStatus(WorkStatus):
    pending = "pending", "Pending", "grey"
    provisioning = "provisioning", "Provisioning", "blue"
    ready = "ready", "Ready", "green"
    failed = "failed", "Failed", "red"
    releasing = "releasing", "Releasing", "blue"
    released = "released", "Released", "grey"
