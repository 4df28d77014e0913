"""Why a QEMU host cannot take a VM: for good, as the pool stands (``permanent_reasons``), or
for now (``transient_reasons``, with how far it is from taking it).
"""

from __future__ import annotations

from functools import cache

from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection.common import DECOMMISSIONED, missing_labels
from labfleet.selection.explanation import Exclusion, Reason
from labfleet.selection.host_types import Acceleration, HostCandidate, HostRequest


def percent(value: float) -> str:
    return f"{round(value, 1):g}%"


# Reasons are frozen, so one object serves every host with the same mismatch: with
# thousands of candidates, building each sentence once matters.
@cache
def _cannot_run(runs: frozenset[Architecture], want: Architecture) -> Reason:
    listed = ", ".join(sorted(a.value for a in runs)) or "nothing"
    return Reason(Exclusion.architecture, f"cannot run {want.value} (runs {listed})")


_NO_KVM = Reason(Exclusion.no_kvm, "no KVM on this host")
_STATUS_REASONS = {
    ServerStatus.maintenance: Reason(
        Exclusion.maintenance, "in maintenance: running VMs continue, no new ones"
    ),
    ServerStatus.offline: Reason(Exclusion.offline, "offline"),
}


def permanent_reasons(
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


def transient_reasons(c: HostCandidate, request: HostRequest) -> tuple[list[Reason], float]:
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
        levels = ", ".join(f"{name} at {percent(pct)}" for name, pct in above)
        reasons.append(
            Reason(Exclusion.over_threshold, f"{levels}, above its threshold of {percent(threshold)}")
        )
    return reasons, shortfall
