"""Choosing a QEMU host for a VM (R9.4, R11.3, R11.4, R12.1, R13.2, R13.4, R13.5).

Filter, then rank:

1. A host is excluded for good (as the pool stands) if it is decommissioned, runs the
   architecture neither natively nor emulated, cannot give KVM when it is required (KVM
   needs the architecture to be native and the host to offer it), lacks a required label,
   or is smaller in all than the request. It is excluded for now if it is in maintenance
   or offline, its capacity has not been detected yet, it has too few vCPUs, memory or disk
   free once its active reservations are subtracted (nothing is over-committed, R11.5), or
   a measured utilization (CPU, memory or storage) is above its threshold (R9.4). A pinned
   request excludes every other host.
2. Eligible hosts rank by acceleration first: KVM, then native without KVM, then emulated.
   TCG is an order of magnitude slower than KVM, so an idle emulating host never beats a
   busy native one. Within a tier, by a score in [0, 1], higher is better, the weighted mean
   of:

   - ``cpu``: vCPUs still free after this VM / cores;
   - ``memory``: memory still free after this VM / memory;
   - ``disk``: disk still free after this VM / storage (0.5 when storage is unknown and no
     disk is asked for);
   - ``utilization``: ``1 - highest measured percentage / threshold``; 0.5 when not sampled
     yet, so a new host is neither favoured nor shunned.

   Weights are ``HostWeights`` (default 0.3, 0.3, 0.1, 0.3), normalised to sum 1. Ties go
   to fewer active reservations, then the lower id: equal hosts share the work (R13.4) and
   the result is deterministic.

Outcomes: ``assigned``; ``unavailable`` when hosts could take the request but none can now
(full, in maintenance, offline or over threshold), with ``alternatives``; ``rejected`` when
none could ever (the API answers 422). Alternatives (R11.4) are, best first: for a pinned
request, the other hosts that could take it now; then hosts that could take it once what
they lack passes, nearest first (see ``_Hosts.nearness``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from labfleet.errors import Invalid
from labfleet.schemas.enums import ARCHITECTURE_ALIASES, Architecture, ServerStatus
from labfleet.selection.common import (
    DECOMMISSIONED,
    ROUND,
    Allocation,
    Allocator,
    Alternative,
    Assessment,
    ScoreWeights,
    describe_labels,
    meeting,
    missing_labels,
    scored,
)
from labfleet.selection.explanation import Exclusion, Note, NoteCode, Reason, Rejection, Score


class Acceleration(StrEnum):
    """How a host would run the VM, best first."""

    kvm = "kvm"
    native = "native"
    """The host's own architecture, but without KVM: TCG."""
    emulated = "emulated"


_TIER = {Acceleration.kvm: 0, Acceleration.native: 1, Acceleration.emulated: 2}


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


@dataclass(frozen=True, slots=True)
class _Assessment(Assessment[HostCandidate]):
    acceleration: Acceleration | None
    shortfall: float
    """How far it is from taking the request: relative capacity deficits plus threshold excess."""

    @property
    def tier(self) -> int:
        return len(_TIER) if self.acceleration is None else _TIER[self.acceleration]


def _pct(value: float) -> str:
    return f"{round(value, 1):g}%"


# Reasons are frozen, so one object serves every host with the same mismatch: with
# thousands of candidates, building each sentence once matters.
@cache
def _cannot_run(runs: frozenset[Architecture], want: Architecture) -> Reason:
    listed = ", ".join(sorted(a.value for a in runs)) or "nothing"
    return Reason(Exclusion.architecture, f"cannot run {want.value} (runs {listed})")


_DEGRADED = Note(NoteCode.degraded, "degraded")
_NO_KVM = Reason(Exclusion.no_kvm, "no KVM on this host")
_STATUS_REASONS = {
    ServerStatus.maintenance: Reason(
        Exclusion.maintenance, "in maintenance: running VMs continue, no new ones"
    ),
    ServerStatus.offline: Reason(Exclusion.offline, "offline"),
}


def _permanent_reasons(
    c: HostCandidate, request: HostRequest, acceleration: Acceleration | None
) -> list[Reason]:
    reasons: list[Reason] = []
    if c.status is ServerStatus.decommissioned:
        reasons.append(DECOMMISSIONED)
    if acceleration is None:
        reasons.append(_cannot_run(c.native_architectures | c.emulated_architectures, request.architecture))
    elif request.kvm_required and acceleration is not Acceleration.kvm:
        if acceleration is Acceleration.native:
            reasons.append(_NO_KVM)
        else:
            arch = request.architecture.value
            reasons.append(Reason(Exclusion.no_kvm, f"{arch} is only emulated here; KVM needs it native"))
    if request.labels and (lacking := missing_labels(request.labels, c.labels)) is not None:
        reasons.append(lacking)
    if c.cpu_cores is not None and c.cpu_cores < request.vcpus:
        reasons.append(
            Reason(Exclusion.too_small, f"needs {request.vcpus} vCPUs, has {c.cpu_cores} cores in all")
        )
    if c.memory_mb is not None and c.memory_mb < request.memory_mb:
        reasons.append(
            Reason(Exclusion.too_small, f"needs {request.memory_mb} MB memory, has {c.memory_mb} MB in all")
        )
    if c.storage_gb is not None and c.storage_gb < request.disk_gb:
        reasons.append(
            Reason(Exclusion.too_small, f"needs {request.disk_gb:g} GB disk, has {c.storage_gb:g} GB in all")
        )
    return reasons


def _short(code: Exclusion, what: str, total: float, free: float, asked: float) -> Reason:
    return Reason(code, f"{max(free, 0):g} of {total:g} {what} free after reservations, needs {asked:g}")


def _transient_reasons(c: HostCandidate, request: HostRequest) -> tuple[list[Reason], float]:
    reasons: list[Reason] = []
    shortfall = 0.0
    by_status = _STATUS_REASONS.get(c.status)
    if by_status is not None:
        reasons.append(by_status)
    cores, memory, storage = c.cpu_cores, c.memory_mb, c.storage_gb
    vcpus, memory_mb, disk_gb = request.vcpus, request.memory_mb, request.disk_gb
    if cores is None or memory is None or (storage is None and disk_gb > 0):
        unknown = [
            what
            for what, total, asked in (
                ("CPU cores", cores, vcpus),
                ("memory", memory, memory_mb),
                ("storage", storage, disk_gb),
            )
            if total is None and asked > 0
        ]
        reasons.append(Reason(Exclusion.capacity_unknown, f"{', '.join(unknown)} not detected yet"))
    # A host too small in all is excluded for good already; saying it is full too would be noise.
    if cores is not None and vcpus <= cores and cores - c.reserved_vcpus < vcpus:
        free = cores - c.reserved_vcpus
        shortfall += (vcpus - free) / vcpus
        reasons.append(_short(Exclusion.insufficient_cpu, "vCPUs", cores, free, vcpus))
    if memory is not None and memory_mb <= memory and memory - c.reserved_memory_mb < memory_mb:
        free = memory - c.reserved_memory_mb
        shortfall += (memory_mb - free) / memory_mb
        reasons.append(_short(Exclusion.insufficient_memory, "MB memory", memory, free, memory_mb))
    if storage is not None and 0 < disk_gb <= storage and storage - c.reserved_disk_gb < disk_gb:
        free_disk = storage - c.reserved_disk_gb
        shortfall += (disk_gb - free_disk) / disk_gb
        reasons.append(_short(Exclusion.insufficient_disk, "GB disk", storage, free_disk, disk_gb))
    u = c.utilization
    threshold = c.utilization_threshold_pct
    if u is not None and max(u.cpu_pct, u.memory_pct, u.storage_pct) > threshold:
        above = [(name, pct) for name, pct in u.items() if pct > threshold]
        shortfall += sum(pct - threshold for _, pct in above) / 100
        levels = ", ".join(f"{name} at {_pct(pct)}" for name, pct in above)
        reasons.append(
            Reason(Exclusion.over_threshold, f"{levels}, above its threshold of {_pct(threshold)}")
        )
    return reasons, shortfall


def _fraction_left(total: float | None, reserved: float, asked: float, unit: str) -> tuple[float, str]:
    if not total:
        return 0.5, "unknown, neutral"
    left = total - reserved - asked
    return min(max(left / total, 0.0), 1.0), f"{left:g} of {total:g}{unit} free after this VM"


_WAIT = {
    Exclusion.insufficient_cpu: 1,
    Exclusion.insufficient_memory: 1,
    Exclusion.insufficient_disk: 1,
    Exclusion.over_threshold: 1,
    Exclusion.capacity_unknown: 2,
    Exclusion.maintenance: 3,
    Exclusion.offline: 3,
}
"""How soon a reason usually passes: reservations end and load drops on their own; a health
check fills in capacity; maintenance and outages need someone."""


class _Hosts(Allocator[HostCandidate, _Assessment, HostAlternative]):
    kind = "host"
    not_now = "cannot take it now"
    some_not_now = "could take it, none now"

    def __init__(self, request: HostRequest, thresholds: HostThresholds, weights: dict[str, float]) -> None:
        super().__init__(request.host_id, weights, request)
        self.request = request
        self.thresholds = thresholds

    def assess(self, c: HostCandidate) -> _Assessment:
        request = self.request
        acceleration = c.acceleration(request.architecture)
        transient, shortfall = _transient_reasons(c, request)
        permanent = _permanent_reasons(c, request, acceleration)
        return _Assessment(c, tuple(permanent), tuple(transient), acceleration, shortfall)

    def excluded_notes(self, a: _Assessment) -> tuple[Note, ...]:
        return (_DEGRADED,) if a.candidate.status is ServerStatus.degraded else ()

    def notes(self, a: _Assessment) -> tuple[Note, ...]:
        c, request, th, acceleration = a.candidate, self.request, self.thresholds, a.acceleration
        notes: list[Note] = []
        arch = request.architecture.value
        if c.status is ServerStatus.degraded:
            notes.append(_DEGRADED)
        if acceleration is Acceleration.emulated:
            notes.append(Note(NoteCode.emulated, f"{arch} is emulated here (TCG), slower than native"))
        elif acceleration is Acceleration.native:
            notes.append(Note(NoteCode.no_kvm, f"{arch} is native here but without KVM (TCG)"))
        for what, unit, reserved, asked, total in (
            ("vCPUs", "", c.reserved_vcpus, request.vcpus, c.cpu_cores),
            ("memory", " MB", c.reserved_memory_mb, request.memory_mb, c.memory_mb),
            ("disk", " GB", c.reserved_disk_gb, request.disk_gb, c.storage_gb),
        ):
            if total and asked > 0:
                share = 100 * (reserved + asked) / total
                if share > th.capacity_warning_pct:
                    notes.append(
                        Note(
                            NoteCode.capacity_warning,
                            f"{what} {share:.0f}% reserved after this VM ({reserved + asked:g} of "
                            f"{total:g}{unit}), above {th.capacity_warning_pct:g}%",
                        )
                    )
        if c.utilization is None:
            notes.append(Note(NoteCode.utilization_unknown, "utilization not sampled yet"))
        else:
            threshold = c.utilization_threshold_pct
            near = [
                f"{name} at {_pct(pct)}"
                for name, pct in c.utilization.items()
                if threshold - th.near_threshold_points < pct <= threshold
            ]
            if near:
                notes.append(
                    Note(
                        NoteCode.near_threshold,
                        f"{', '.join(near)}, within {th.near_threshold_points:g} points of its "
                        f"threshold of {_pct(threshold)}",
                    )
                )
        return tuple(notes)

    def score(self, a: _Assessment) -> Score:
        c, request = a.candidate, self.request
        cpu, cpu_detail = _fraction_left(c.cpu_cores, c.reserved_vcpus, request.vcpus, " vCPUs")
        memory, memory_detail = _fraction_left(c.memory_mb, c.reserved_memory_mb, request.memory_mb, " MB")
        disk, disk_detail = _fraction_left(c.storage_gb, c.reserved_disk_gb, request.disk_gb, " GB")
        if c.utilization is None:
            utilization, utilization_detail = 0.5, "not sampled yet, neutral"
        else:
            name, pct = max(c.utilization.items(), key=lambda item: item[1])
            threshold = c.utilization_threshold_pct
            utilization = 1.0 - min(max(pct, 0.0) / threshold, 1.0) if threshold > 0 else 0.0
            utilization_detail = f"{name} at {_pct(pct)}, threshold {_pct(threshold)}"
        return scored(
            self.weights,
            ("cpu", cpu, cpu_detail),
            ("memory", memory, memory_detail),
            ("disk", disk, disk_detail),
            ("utilization", utilization, utilization_detail),
        )

    def rank_key(self, a: _Assessment, score: Score) -> tuple[int, float, int, int]:
        return (a.tier, -score.total, a.candidate.reservations, a.candidate.id)

    def chosen_summary(self, a: _Assessment, score: Score) -> str:
        return f"{a.candidate.name} chosen: {a.acceleration}, score {score.total:.3f}"

    def nearness(self, a: _Assessment) -> tuple[int, int, float, int, int]:
        """Nearest first: what passes soonest, the fewest obstacles, the smallest shortfall, the best tier."""
        wait = max(_WAIT.get(r.code, 3) for r in a.transient)
        return (wait, len(a.transient), round(a.shortfall, ROUND), a.tier, a.candidate.id)

    def alternative(self, a: _Assessment) -> HostAlternative:
        c = a.candidate
        assert a.acceleration is not None  # only hosts that can run the architecture are alternatives
        return HostAlternative(
            c.id,
            c.name,
            a.eligible,
            a.transient,
            a.acceleration,
            c.free_vcpus,
            c.free_memory_mb,
            c.free_disk_gb,
        )

    def unmatched(self, assessments: Sequence[_Assessment]) -> Rejection:
        request = self.request
        arch = request.architecture.value
        pool = meeting(meeting(list(assessments), Exclusion.decommissioned), Exclusion.architecture)
        if not pool:
            return Rejection(Exclusion.architecture, f"no host in the pool runs {arch}, natively or emulated")
        what = f"runs {arch}"
        if request.kvm_required:
            pool = meeting(pool, Exclusion.no_kvm)
            if not pool:
                return Rejection(Exclusion.no_kvm, f"no host in the pool runs {arch} with KVM")
            what += " with KVM"
        if request.labels:
            pool = meeting(pool, Exclusion.labels)
            wanted = describe_labels(request.labels)
            if not pool:
                return Rejection(Exclusion.labels, f"no host that {what} has the labels {wanted}")
            what += f" with the labels {wanted}"
        return Rejection(
            Exclusion.too_small,
            f"no host that {what} is large enough for {request.vcpus} vCPUs, {request.memory_mb} MB memory "
            f"and {request.disk_gb:g} GB disk",
        )


def select_host(
    *,
    request: HostRequest,
    candidates: Sequence[HostCandidate],
    thresholds: HostThresholds | None = None,
    weights: HostWeights | None = None,
    max_alternatives: int = 3,
) -> HostDecision:
    """Choose a QEMU host for ``request`` among ``candidates`` and explain the choice."""
    hosts = _Hosts(request, thresholds or HostThresholds(), (weights or HostWeights()).normalised())
    return HostDecision(*hosts.decide(candidates, max_alternatives))
