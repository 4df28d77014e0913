"""A resource's health and capacity as a person asks for them: its state now, the last check
and why, the thresholds it is judged by, and how much of it is free (reads only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Board, BuildServer, Host
from labfleet.db.repositories import reservations as reservations_repo
from labfleet.db.repositories import resource_health as repo
from labfleet.schemas.alerts import AlertOut
from labfleet.schemas.common import StatusOut
from labfleet.schemas.enums import ResourceKind
from labfleet.schemas.health import Amounts, BuildServerCapacity, HealthOut, HostCapacity, Measured
from labfleet.schemas.settings import LabSettings
from labfleet.services.health import tuning
from labfleet.services.health.build_servers import HealthPolicy
from labfleet.services.inventory import boards, build_servers, hosts

_SERVING = ("online", "degraded")
_GB = 1024**3


def _status_why(status: str) -> str | None:
    return {
        "maintenance": "in maintenance: an operator put it there, and takes it out",
        "decommissioned": "decommissioned: out of the pool for good",
    }.get(status)


async def _health(
    session: AsyncSession,
    lab: LabSettings,
    kind: ResourceKind,
    row: Any,
    *,
    checked_at: datetime | None,
    failures: int,
    error: str | None,
    details: dict[str, Any],
) -> HealthOut:
    interval = tuning.interval(lab, kind)
    alerts = await repo.open_alerts(session, kind.value, row.id)
    return HealthOut(
        kind=kind,
        id=row.id,
        name=getattr(row, "hostname", None) or row.name,
        status=StatusOut(
            value=row.status_choice.value, label=row.status_choice.label, colour=row.status_choice.colour
        ),
        checked_at=checked_at,
        answered=None if checked_at is None else failures == 0,
        consecutive_failures=failures,
        why=error or _status_why(row.status),
        check_interval_seconds=interval,
        next_check_after=None if checked_at is None else checked_at + timedelta(seconds=interval),
        thresholds=lab.thresholds_for(kind, row.id),
        details=details,
        open_alerts=[AlertOut.model_validate(a, from_attributes=True) for a in alerts],
    )


async def build_server_health(session: AsyncSession, lab: LabSettings, ident: int) -> HealthOut:
    s: BuildServer = await build_servers.get(session=session, ident=ident)
    details = {"load_1m": s.load_1m, "cpu_cores": s.cpu_cores, "disk_free_gb": s.disk_free_gb}
    return await _health(
        session,
        lab,
        ResourceKind.build_server,
        s,
        checked_at=s.checked_at,
        failures=s.check_failures,
        error=s.last_check_error,
        details=details,
    )


async def host_health(session: AsyncSession, lab: LabSettings, ident: int) -> HealthOut:
    h: Host = await hosts.get(session=session, ident=ident)
    sample = await repo.latest_sample(session, h.id)
    details: dict[str, Any] = {}
    if sample is not None:
        details = {
            "cpu_pct": sample.cpu_pct,
            "memory_pct": sample.memory_pct,
            "storage_pct": sample.storage_pct,
            "running_vms": sample.running_vms,
            "sampled_at": sample.taken_at.isoformat(),
        }
    return await _health(
        session,
        lab,
        ResourceKind.host,
        h,
        checked_at=h.checked_at,
        failures=h.check_failures,
        error=h.last_check_error,
        details=details,
    )


async def board_health(session: AsyncSession, lab: LabSettings, ident: int) -> HealthOut:
    b: Board = await boards.get(session=session, ident=ident)
    found = await repo.board_health(session, b.id)
    details: dict[str, Any] = {}
    if found is not None:
        details = {
            "reachable": found.reachable,
            "temperature_c": found.temperature_c,
            "power_state": found.power_state,
            "recovery_attempted_at": found.recovery_attempted_at.isoformat()
            if found.recovery_attempted_at
            else None,
        }
    return await _health(
        session,
        lab,
        ResourceKind.board,
        b,
        checked_at=found.checked_at if found else None,
        failures=found.consecutive_failures if found else 0,
        error=found.last_error if found else None,
        details=details,
    )


# -- capacity


def _less(total: float | None, taken: float) -> float | None:
    return None if total is None else total - taken


async def host_capacity(session: AsyncSession, ident: int, now: datetime | None = None) -> HostCapacity:
    h: Host = await hosts.get(session=session, ident=ident)
    usage = await reservations_repo.host_usage(session, h.id, now or utcnow())
    sample = await repo.latest_sample(session, h.id)
    free_vcpus = _less(h.cpu_cores, usage.vcpus)
    why: list[str] = []
    if h.status not in _SERVING:
        why.append(f"it is {h.status}")
    if free_vcpus is not None and free_vcpus <= 0:
        why.append("every vCPU is reserved")
    used = None
    if sample is not None:
        used = Measured(
            cpu_pct=sample.cpu_pct,
            memory_pct=sample.memory_pct,
            storage_pct=sample.storage_pct,
            running_vms=sample.running_vms,
            sampled_at=sample.taken_at,
        )
        for name, pct in (
            ("CPU", sample.cpu_pct),
            ("memory", sample.memory_pct),
            ("storage", sample.storage_pct),
        ):
            if pct > h.utilization_threshold_pct:
                why.append(f"{name} at {pct:.0f}% is above its threshold of {h.utilization_threshold_pct}%")
    return HostCapacity(
        host_id=h.id,
        name=h.hostname,
        status=h.status,
        total=Amounts(vcpus=h.cpu_cores, memory_mb=h.memory_mb, storage_gb=h.storage_gb),
        reserved=Amounts(vcpus=usage.vcpus, memory_mb=usage.memory_mb, storage_gb=usage.disk_gb),
        free=Amounts(
            vcpus=None if free_vcpus is None else int(free_vcpus),
            memory_mb=None if h.memory_mb is None else h.memory_mb - usage.memory_mb,
            storage_gb=_less(h.storage_gb, usage.disk_gb),
        ),
        reservations=usage.count,
        used=used,
        threshold_pct=float(h.utilization_threshold_pct),
        takes_new_work=not why,
        why_not=why,
    )


async def build_server_capacity(
    session: AsyncSession, lab: LabSettings, base: HealthPolicy, ident: int
) -> BuildServerCapacity:
    s: BuildServer = await build_servers.get(session=session, ident=ident)
    t = tuning.build_server(base, lab, s.id).thresholds
    free = max(0, s.max_concurrent_builds - s.active_builds)
    why: list[str] = []
    if s.status not in _SERVING:
        why.append(f"it is {s.status}")
    if free == 0:
        why.append(f"all {s.max_concurrent_builds} build slots are taken")
    if s.disk_free_gb is not None and s.disk_free_gb < t.disk_critical_gb:
        why.append(f"{s.disk_free_gb:.1f} GB of disk free, below the critical {t.disk_critical_gb:g} GB")
    if s.load_1m is not None and s.cpu_cores and s.load_1m / s.cpu_cores > t.max_load_per_core:
        why.append(f"load {s.load_1m:g} on {s.cpu_cores} cores is above {t.max_load_per_core:g} per core")
    return BuildServerCapacity(
        build_server_id=s.id,
        name=s.hostname,
        status=s.status,
        slots=s.max_concurrent_builds,
        running=s.active_builds,
        queued=s.queued_builds,
        free_slots=free,
        disk_free_gb=s.disk_free_gb,
        disk_total_gb=s.disk_total_gb,
        disk_warning_gb=t.disk_warning_gb,
        disk_critical_gb=t.disk_critical_gb,
        load_1m=s.load_1m,
        cpu_cores=s.cpu_cores,
        max_load_per_core=t.max_load_per_core,
        takes_new_work=not why,
        why_not=why,
    )
