"""Periodic health checks of QEMU hosts: reachability and utilization through libvirt (R9).

A round of checks (``labfleet.engine.resource_health`` runs one every interval) has the
three steps of the build server checks (``services.health.build_servers``), so that no
database transaction stays open while a host is waited for:

1. ``due`` claims the hosts to check in one writing statement the caller commits: every
   host not decommissioned whose last check is older than ``min_gap``, so that several
   processes on one database check each host once per interval between them and "N
   failed checks in a row" means N. ``checked_at`` is the time of the last check,
   answered or not.
2. ``probe`` asks the host's libvirt, within a timeout, through a ``HostProbe``:
   ``LibvirtProbe`` reads the host's statistics and its domains; a host that does not
   answer is a result, never an exception.
3. ``record`` applies the outcome in the caller's transaction, its first statement a write:

   - Answered: capacity refreshed (cores, memory, storage), ``check_failures`` reset,
     ``last_check_error`` cleared (or set to what libvirt could not tell), an ``offline``
     host back ``online`` and its ``unreachable`` alert resolved. A utilization sample is
     kept for the graphs (R9.1, R9.5): CPU, memory and storage in percent and the running
     VMs. It is also what host selection compares with the host's threshold (R9.4: a host
     above it takes no new VM). ``prune`` deletes samples older than the retention.
   - No answer: ``check_failures`` + 1 and ``last_check_error`` = the reason. At
     ``failure_limit`` failures in a row an ``online`` or ``degraded`` host goes
     ``offline`` with an ``unreachable`` alert (critical) (R9.3, property 10).

What "utilization" is, as measured here: memory is what the host itself uses (libvirt's
node memory statistics; when the driver has none, or they contradict its total, the memory
its running VMs were given, said in ``last_check_error``);
storage is what is allocated in its active storage pools (0 when it has none, said in
``last_check_error``); CPU is the vCPUs of its running VMs over its cores, the share of
its processors given to guests (libvirt offers no instantaneous load in one call, and the
vCPUs are what reservations hold). All three may pass 100 % when a host is over-committed.

Its VMs and environments (R9.3): labfleet has no VM or environment rows yet; environments
and the VMs deployed for them come with issue 6. What exists is flagged: the ``unreachable``
alert names the VMs seen running at the host's last answer and the active reservations
that hold it, and ``CheckResult.reservations`` lists them for the caller.

Maintenance, as for build servers: a host in maintenance is checked like any other, so its
utilization stays true, but a check never changes its status, and not answering raises no
``unreachable`` alert. A check never sets ``degraded`` and treats it as ``online``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.repositories import host_checks as repo
from labfleet.errors import DeviceError
from labfleet.hw.libvirt import LibvirtHost
from labfleet.schemas.enums import ServerStatus
from labfleet.services.core import alerts
from labfleet.services.health.missed import OFFLINE, UNREACHABLE, Checked, Missed, raise_unreachable
from labfleet.services.health.probes import HostAccess, ResourceProbe

RESOURCE_KIND = "host"
MAX_CONCURRENT_CHECKS = 16

_ONLINE = ServerStatus.online.value


@dataclass(frozen=True, slots=True)
class HostHealthPolicy:
    """How hosts are judged; from ``Settings`` (``LABFLEET_HEALTH_*``)."""

    failure_limit: int = 3
    """Failed checks in a row after which a host goes offline."""
    timeout_seconds: float = 30.0
    """For one check, connection included."""
    sample_retention: timedelta = timedelta(days=7)
    """Utilization samples older than this are pruned."""


@dataclass(frozen=True, slots=True)
class HostUsage:
    """What a host's libvirt told: its capacity and how much of it is used."""

    cpu_cores: int | None
    memory_mb: int | None
    storage_gb: float | None
    cpu_pct: float
    memory_pct: float
    storage_pct: float
    running_vms: int
    problems: tuple[str, ...] = ()
    """What could not be measured (and was counted as 0)."""


class HostProbe(Protocol):
    async def host_usage(self, access: HostAccess) -> HostUsage | None:
        """The host's usage; None when it answered but tells none. Raises ``DeviceError``
        when it does not answer."""
        ...


class LibvirtProbe:
    """Asks the host's libvirt for its statistics and its domains."""

    def __init__(self, *, timeout: float = 20.0) -> None:
        self._timeout = timeout

    async def host_usage(self, access: HostAccess) -> HostUsage:
        async with await LibvirtHost.open(access.libvirt_uri, timeout=self._timeout) as libvirt:
            stats = await libvirt.stats()
            domains = await libvirt.domains()
        running = [d for d in domains if d.running]
        problems = []
        given_vcpus = sum(d.vcpus for d in running)
        given_memory = sum(d.memory_mb for d in running)
        cpu_pct = 100.0 * given_vcpus / stats.cpu_cores if stats.cpu_cores else 0.0
        total, free = stats.memory_mb, stats.memory_free_mb
        if free is not None and total and free <= total:
            memory_pct = 100.0 * (total - free) / total
        elif total:
            # Some drivers have no node memory statistics; some hosts (containers) report a
            # free memory above their total. Then what the running VMs were given is counted.
            memory_pct = 100.0 * given_memory / total
            if free is not None:
                problems.append(
                    f"memory: libvirt says {free} MiB free of {total} MiB; "
                    "counted what running VMs were given"
                )
        else:
            memory_pct = 0.0
        if stats.storage_gb and stats.storage_free_gb is not None:
            storage_pct = 100.0 * (stats.storage_gb - stats.storage_free_gb) / stats.storage_gb
        else:
            storage_pct = 0.0
            problems.append("storage: libvirt has no active storage pool to measure")
        return HostUsage(
            cpu_cores=stats.cpu_cores,
            memory_mb=stats.memory_mb,
            storage_gb=stats.storage_gb,
            cpu_pct=round(cpu_pct, 1),
            memory_pct=round(memory_pct, 1),
            storage_pct=round(storage_pct, 1),
            running_vms=len(running),
            problems=tuple(problems),
        )


class ProbeOnly:
    """Reachability through a ``ResourceProbe`` and no usage: ``NoProbe`` gives this when
    device checks are off (``LABFLEET_DEVICE_CHECKS=false``): the operator is trusted."""

    def __init__(self, probe: ResourceProbe) -> None:
        self._probe = probe

    async def host_usage(self, access: HostAccess) -> HostUsage | None:
        await self._probe.host(access)
        return None


@dataclass(frozen=True, slots=True)
class Target:
    host_id: int
    hostname: str
    status: str
    access: HostAccess


@dataclass(frozen=True, slots=True)
class Probe:
    """What a check learned: whether the host answered, and its usage if it told it."""

    target: Target
    answered: bool
    usage: HostUsage | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult(Checked):
    host_id: int
    usage: HostUsage | None = None
    reservations: tuple[int, ...] = field(default=())
    """Active reservations on a host that went offline: flagged in its alert."""


# -- 1. which hosts


async def due(*, session: AsyncSession, min_gap: float = 0.0, now: datetime | None = None) -> list[Target]:
    """Claim every host not decommissioned whose last check is older than ``min_gap`` seconds.
    One writing statement; the caller commits it."""
    rows = await repo.claim_due(session, now=now or utcnow(), min_gap=min_gap)
    return [
        Target(
            host_id=row.id,
            hostname=row.hostname,
            status=row.status,
            access=HostAccess(name=row.hostname, libvirt_uri=row.libvirt_uri),
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


# -- 2. asking the host


async def probe(*, probe: HostProbe, target: Target, timeout: float) -> Probe:
    """The host's usage, or why it did not answer within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            usage = await probe.host_usage(target.access)
    except TimeoutError:
        return Probe(
            target=target, answered=False, error=f"{target.hostname}: no answer within {timeout:g} s"
        )
    except DeviceError as exc:
        return Probe(target=target, answered=False, error=exc.message)
    return Probe(target=target, answered=True, usage=usage)


# -- 3. what it means


async def record(
    *, session: AsyncSession, probe: Probe, policy: HostHealthPolicy, now: datetime | None = None
) -> CheckResult | None:
    """Apply a check's outcome (see the module's docstring); None if the host is gone or
    decommissioned. Flushes; the caller commits."""
    now = now or utcnow()
    if probe.answered:
        return await _answered(session, probe.target, probe.usage, now)
    return await _unanswered(session, probe.target, probe.error or "no answer", policy, now)


async def prune(*, session: AsyncSession, policy: HostHealthPolicy, now: datetime | None = None) -> int:
    """Delete utilization samples older than the retention; how many. The caller commits."""
    return await repo.prune_samples(session, before=(now or utcnow()) - policy.sample_retention)


async def _answered(
    session: AsyncSession, target: Target, usage: HostUsage | None, now: datetime
) -> CheckResult | None:
    capacity = {}
    if usage is not None:
        capacity = {
            k: v
            for k, v in (
                ("cpu_cores", usage.cpu_cores),
                ("memory_mb", usage.memory_mb),
                ("storage_gb", usage.storage_gb),
            )
            if v is not None
        }
    problems = "; ".join(usage.problems) if usage is not None and usage.problems else None
    before = await repo.record_answer(
        session, host_id=target.host_id, capacity=capacity, problems=problems, now=now
    )
    if before is None:
        return None
    back = await repo.bring_back_online(session, host_id=target.host_id)
    if usage is not None:
        await repo.add_sample(
            session,
            host_id=target.host_id,
            taken_at=now,
            cpu_pct=usage.cpu_pct,
            memory_pct=usage.memory_pct,
            storage_pct=usage.storage_pct,
            running_vms=usage.running_vms,
        )
    done = await alerts.resolve_alert(
        session=session, resource_kind=RESOURCE_KIND, resource_id=target.host_id, kind=UNREACHABLE, now=now
    )
    return CheckResult(
        host_id=target.host_id,
        hostname=target.hostname,
        answered=True,
        status=_ONLINE if back else before,
        previous_status=before,
        failures=0,
        error=problems,
        usage=usage,
        resolved=(UNREACHABLE,) if done is not None else (),
    )


async def _unanswered(
    session: AsyncSession, target: Target, error: str, policy: HostHealthPolicy, now: datetime
) -> CheckResult | None:
    row = await repo.record_failure(session, host_id=target.host_id, error=error, now=now)
    if row is None:
        return None
    missed = Missed(*row, limit=policy.failure_limit)
    result = missed.result(CheckResult, hostname=target.hostname, error=error, host_id=target.host_id)
    if not missed.unreachable:
        return result
    down = await repo.take_offline(session, host_id=target.host_id)
    held = await repo.holders(session, host_id=target.host_id, now=now)
    vms = await repo.last_running_vms(session, host_id=target.host_id)
    flagged = []
    if vms:
        flagged.append(f"{vms} VM(s) were running on it at its last answer")
    envs = await repo.environments_on(session, host_id=target.host_id)
    if envs:
        named = (f"#{i} (pipeline #{p})" if p else f"#{i} ({owner})" for i, p, owner in envs)
        flagged.append("environments " + ", ".join(named) + " are on it")
    if held:
        flagged.append("reservations " + ", ".join(f"#{i} ({owner})" for i, owner in held) + " hold it")
    message = missed.says("QEMU host", target.hostname, error)
    if flagged:
        message += "; " + "; ".join(flagged)
    await raise_unreachable(session, RESOURCE_KIND, target.host_id, message, now)
    return replace(
        result,
        status=OFFLINE if down else missed.before,
        raised=(UNREACHABLE,),
        reservations=tuple(i for i, _ in held),
    )
