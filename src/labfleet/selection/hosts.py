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

from collections.abc import Sequence
from dataclasses import dataclass

from labfleet.schemas.enums import ServerStatus
from labfleet.selection.common import ROUND, Allocator, Assessment, describe_labels, meeting, scored
from labfleet.selection.explanation import Exclusion, Note, NoteCode, Rejection, Score
from labfleet.selection.host_reasons import percent, permanent_reasons, transient_reasons
from labfleet.selection.host_types import (
    Acceleration,
    HostAlternative,
    HostCandidate,
    HostDecision,
    HostRequest,
    HostThresholds,
    HostWeights,
)

_TIER = {Acceleration.kvm: 0, Acceleration.native: 1, Acceleration.emulated: 2}


@dataclass(frozen=True, slots=True)
class _Assessment(Assessment[HostCandidate]):
    acceleration: Acceleration | None
    shortfall: float
    """How far it is from taking the request: relative capacity deficits plus threshold excess."""

    @property
    def tier(self) -> int:
        return len(_TIER) if self.acceleration is None else _TIER[self.acceleration]


_DEGRADED = Note(NoteCode.degraded, "degraded")


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
        transient, shortfall = transient_reasons(c, request)
        permanent = permanent_reasons(c, request, acceleration)
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
                f"{name} at {percent(pct)}"
                for name, pct in c.utilization.items()
                if threshold - th.near_threshold_points < pct <= threshold
            ]
            if near:
                notes.append(
                    Note(
                        NoteCode.near_threshold,
                        f"{', '.join(near)}, within {th.near_threshold_points:g} points of its "
                        f"threshold of {percent(threshold)}",
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
            utilization_detail = f"{name} at {percent(pct)}, threshold {percent(threshold)}"
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
