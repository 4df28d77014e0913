"""What QEMU host selection takes and answers: the hosts as candidates, the request, the
thresholds and weights it is judged by, and the decision with its alternatives.

Frozen dataclasses only; ``hosts.py`` does the choosing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from labfleet.errors import Invalid
from labfleet.schemas.enums import ARCHITECTURE_ALIASES, Architecture, ServerStatus
from labfleet.selection.common import Allocation, Alternative, ScoreWeights
from labfleet.selection.explanation import Note, NoteCode


class Acceleration(StrEnum):
    """How a host would run the VM, best first."""

    kvm = "kvm"
    native = "native"
    """The host's own architecture, but without KVM: TCG."""
    emulated = "emulated"


@dataclass(frozen=True, slots=True)
class HostUtilization:
    """The latest utilization sample of a host, in percent."""

    cpu_pct: float
    memory_pct: float
    storage_pct: float

    def items(self) -> tuple[tuple[str, float], ...]:
        return (("cpu", self.cpu_pct), ("memory", self.memory_pct), ("storage", self.storage_pct))


@dataclass(frozen=True, slots=True)
class HostCandidate:
    """A QEMU host as selection sees it: a snapshot the service reads from the database."""

    id: int
    name: str
    status: ServerStatus
    native_architectures: frozenset[Architecture]
    """The host CPU's own architectures (x86_64 hosts usually run i386 natively too)."""
    emulated_architectures: frozenset[Architecture] = frozenset()
    """What libvirt can emulate besides (its machine types' architectures)."""
    kvm: bool = False
    """Whether the host offers KVM, for its native architectures only."""
    cpu_cores: int | None = None
    memory_mb: int | None = None
    storage_gb: float | None = None
    reserved_vcpus: int = 0
    """Sums over the host's active reservations, given by the caller."""
    reserved_memory_mb: int = 0
    reserved_disk_gb: float = 0.0
    reservations: int = 0
    """How many active reservations it has."""
    utilization: HostUtilization | None = None
    utilization_threshold_pct: float = 85.0
    labels: Mapping[str, str] = field(default_factory=dict)

    def acceleration(self, architecture: Architecture) -> Acceleration | None:
        """How this host would run ``architecture``; ``None`` if it cannot."""
        if architecture in self.native_architectures:
            return Acceleration.kvm if self.kvm else Acceleration.native
        if architecture in self.emulated_architectures:
            return Acceleration.emulated
        return None

    @property
    def free_vcpus(self) -> int | None:
        return None if self.cpu_cores is None else self.cpu_cores - self.reserved_vcpus

    @property
    def free_memory_mb(self) -> int | None:
        return None if self.memory_mb is None else self.memory_mb - self.reserved_memory_mb

    @property
    def free_disk_gb(self) -> float | None:
        return None if self.storage_gb is None else self.storage_gb - self.reserved_disk_gb


def architectures_of(machine_types: Mapping[str, object]) -> frozenset[Architecture]:
    """The architectures a host's ``machine_types`` (as read from libvirt) name; unknown ones are skipped."""
    found: set[Architecture] = set()
    for name in machine_types:
        arch = ARCHITECTURE_ALIASES.get(name)
        if arch is None and name in Architecture.__members__:
            arch = Architecture(name)
        if arch is not None:
            found.add(arch)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class HostRequest:
    architecture: Architecture
    vcpus: int = 1
    memory_mb: int = 1024
    disk_gb: float = 0.0
    kvm_required: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels the host must carry, each with this value."""
    host_id: int | None = None
    """A pinned host; ``None`` is ``auto``."""

    def __post_init__(self) -> None:
        if self.vcpus < 1:
            raise Invalid("a VM needs at least one vCPU", field="vcpus")
        if self.memory_mb < 1:
            raise Invalid("a VM needs some memory", field="memory_mb")
        if self.disk_gb < 0:
            raise Invalid("disk must not be negative", field="disk_gb")


@dataclass(frozen=True, slots=True)
class HostThresholds:
    capacity_warning_pct: float = 80.0
    """Warn when more than this share of a resource would be reserved once the VM is placed."""
    near_threshold_points: float = 10.0
    """Warn when a measured utilization is within this many points under the host's threshold."""

    def __post_init__(self) -> None:
        if not 0 < self.capacity_warning_pct <= 100:
            raise Invalid("capacity_warning_pct must be in (0, 100]", field="capacity_warning_pct")
        if self.near_threshold_points < 0:
            raise Invalid("near_threshold_points must not be negative", field="near_threshold_points")


@dataclass(frozen=True, slots=True)
class HostWeights(ScoreWeights):
    cpu: float = 0.3
    memory: float = 0.3
    disk: float = 0.1
    utilization: float = 0.3


@dataclass(frozen=True, slots=True)
class HostAlternative(Alternative):
    """A host to suggest when the request cannot be placed as asked (R11.4).

    ``available_now``: it could take the request now (the pinned host could not). Otherwise
    ``lacks`` says what stands in the way, and the free capacity says what it could take now,
    so a smaller request can be tried.
    """

    acceleration: Acceleration
    free_vcpus: int | None
    free_memory_mb: int | None
    free_disk_gb: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **Alternative.as_dict(self),
            "acceleration": self.acceleration.value,
            "free_vcpus": self.free_vcpus,
            "free_memory_mb": self.free_memory_mb,
            "free_disk_gb": self.free_disk_gb,
        }


_WARNINGS = frozenset({NoteCode.capacity_warning, NoteCode.near_threshold, NoteCode.degraded})


@dataclass(frozen=True, slots=True)
class HostDecision(Allocation[HostCandidate, HostAlternative]):
    """The choice: a host (or none), why, and what else to try when none can take it."""

    @property
    def warnings(self) -> tuple[Note, ...]:
        """Capacity warnings of the chosen host (R11.4): near-full, near its threshold, degraded."""
        if self.chosen is None:
            return ()
        return tuple(n for n in self.explanation.report(self.chosen.id).notes if n.code in _WARNINGS)

    def _extra(self) -> dict[str, Any]:
        return {"warnings": [n.as_dict() for n in self.warnings]}
