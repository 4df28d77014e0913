"""Periodic health checks of build servers: reachability, capacity and disk (R2.1-2.4, R12).

A round of checks (``labfleet.engine.health`` runs one every interval) has three steps,
so that no database transaction stays open while a machine is waited for:

1. ``due`` claims the servers to check, in one writing statement the caller commits:
   every server not decommissioned whose last check is older than ``min_gap``. Several
   processes on one database so check each server once per interval between them, and
   "N failed checks in a row" means N, not N times the number of processes.
   ``checked_at`` is therefore the time of the last check, answered or not.
2. ``probe`` runs the probe script over SSH (CPUs, memory, load, and the disk of the
   login directory, where the build workspaces live), within a timeout; a machine that
   does not answer is a result, never an exception.
3. ``record`` applies the outcome in the caller's transaction; its first statement is a
   write, so that SQLite never has to upgrade a read snapshot (which fails at once when
   another connection committed in between). The caller commits, then announces the
   build jobs in ``CheckResult.jobs`` (``services.builds.announce``).

   - Answered: capacity refreshed, ``check_failures`` reset, ``last_check_error`` cleared
     (or set to what the probe could not learn), an ``offline`` server back ``online``.
     Free disk below the warning threshold raises a ``disk_low`` alert (warning); below
     the critical threshold the same alert turns critical, and the claim query gives the
     server no new build (property 3). Above both, ``disk_low`` is resolved; an answer
     resolves ``unreachable``.
   - No answer: ``check_failures`` + 1 and ``last_check_error`` = the reason. At
     ``failure_limit`` failures in a row an ``online`` or ``degraded`` server goes
     ``offline`` with an ``unreachable`` alert (critical), and its running builds are
     requeued, or failed once out of attempts, with the reason in the job and its log
     (R2.3: never lost, never left running).

Maintenance, as decided here: a server in maintenance is checked like any other, so its
capacity and disk alerts stay true, but a check never changes its status: an operator put
it there and an operator takes it out. Not answering, it raises no ``unreachable`` alert
(reboots are what maintenance windows are for); after ``failure_limit`` failures its
running builds are taken off it all the same, since a machine that answered none of N
checks is not running them any more. A check never sets ``degraded`` and treats it as
``online``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.repositories import build_server_checks as checks_repo
from labfleet.db.repositories import server_queue
from labfleet.errors import DeviceError, LabfleetError
from labfleet.hw.probe import MachineFacts, probe_machine
from labfleet.hw.ssh import SshPool, SshRunner, SshTarget
from labfleet.schemas.enums import ServerStatus
from labfleet.secretbox import SecretBox
from labfleet.selection import Thresholds
from labfleet.services.builds import queue as build_queue
from labfleet.services.core import alerts
from labfleet.services.health.missed import OFFLINE, UNREACHABLE, Checked, Missed, raise_unreachable
from labfleet.services.health.probes import WORKSPACE_DISK
from labfleet.services.inventory import credentials

RESOURCE_KIND = "build_server"
DISK_LOW = "disk_low"
# Servers checked at once by one round.
MAX_CONCURRENT_CHECKS = 16

_MB = 1024**2
_GB = 1024**3
_ONLINE = ServerStatus.online.value
_DEGRADED = ServerStatus.degraded.value
_MAINTENANCE = ServerStatus.maintenance.value
_DECOMMISSIONED = ServerStatus.decommissioned.value


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """How build servers are judged; from ``Settings`` (``LABFLEET_HEALTH_*``, ``LABFLEET_BUILD_*``)."""

    thresholds: Thresholds = field(default_factory=Thresholds)
    failure_limit: int = 3
    """Failed checks in a row after which a server goes offline."""
    timeout_seconds: float = 30.0
    """For one check, connection included."""
    max_attempts: int = 3
    """Runs of a build before it is failed for good (as ``BuildPolicy.max_attempts``)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A server claimed for a check, with how to reach it (or why it cannot be)."""

    server_id: int
    hostname: str
    status: str
    ssh: SshTarget | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """What a check learned: the machine's facts, or why it did not answer."""

    target: Target
    facts: MachineFacts | None
    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult(Checked):
    """What one check changed; ``jobs`` are to be announced after the commit."""

    server_id: int
    disk_free_gb: float | None = None
    jobs: tuple[tuple[int, str], ...] = ()
    """Running builds taken off the server: (job id, ``requeued`` or ``failed``)."""


# -- 1. which servers


async def due(
    *, session: AsyncSession, secrets: SecretBox, min_gap: float = 0.0, now: datetime | None = None
) -> list[Target]:
    """Claim every server not decommissioned whose last check is older than ``min_gap`` seconds.

    One writing statement (the caller commits it): concurrent claimers on PostgreSQL wait
    for each other's rows and then skip those just claimed.
    """
    now = now or utcnow()
    rows = await checks_repo.claim_due(session, now=now, min_gap=min_gap)
    targets = []
    for row in sorted(rows, key=lambda r: r.id):
        try:
            ssh, problem = credentials.ssh_target(secrets, row), None
        except LabfleetError as exc:
            ssh, problem = None, f"its stored SSH access cannot be used: {exc.message}"
        targets.append(
            Target(server_id=row.id, hostname=row.hostname, status=row.status, ssh=ssh, problem=problem)
        )
    return targets


# -- 2. asking the machine


async def probe(*, pool: SshPool, target: Target, timeout: float) -> Probe:
    """The machine's facts, or why it did not answer within ``timeout`` (connecting included)."""
    if target.ssh is None:
        return Probe(target=target, facts=None, error=target.problem or "no SSH access is stored")
    runner = SshRunner(pool=pool, target=target.ssh)
    try:
        async with asyncio.timeout(timeout):
            facts = await probe_machine(
                runner=runner, disk_path=WORKSPACE_DISK, timeout=timeout, toolchains=False
            )
    except TimeoutError:
        return Probe(target=target, facts=None, error=f"{target.ssh.where}: no answer within {timeout:g} s")
    except DeviceError as exc:
        return Probe(target=target, facts=None, error=exc.message)
    return Probe(target=target, facts=facts, error=None)


# -- 3. what it means


async def record(
    *, session: AsyncSession, probe: Probe, policy: HealthPolicy, now: datetime | None = None
) -> CheckResult | None:
    """Apply a check's outcome (see the module's docstring); None if the server is gone or
    decommissioned. Flushes; the caller commits, then announces ``jobs``."""
    now = now or utcnow()
    if probe.facts is not None:
        return await _answered(session, probe.target, probe.facts, policy, now)
    return await _unanswered(session, probe.target, probe.error or "no answer", policy, now)


async def check_one(
    *, session: AsyncSession, pool: SshPool, target: Target, policy: HealthPolicy, now: datetime | None = None
) -> CheckResult | None:
    """``probe`` then ``record``. Give it a session with no transaction open: nothing is read
    before the machine answered, so no transaction waits on it."""
    found = await probe(pool=pool, target=target, timeout=policy.timeout_seconds)
    return await record(session=session, probe=found, policy=policy, now=now)


def _gb(value: int | None) -> float | None:
    return None if value is None else round(value / _GB, 2)


async def _answered(
    session: AsyncSession, target: Target, facts: MachineFacts, policy: HealthPolicy, now: datetime
) -> CheckResult | None:
    capacity = {
        "cpu_cores": facts.cpu_count,
        "memory_mb": None if facts.memory_total_bytes is None else facts.memory_total_bytes // _MB,
        "disk_total_gb": _gb(facts.disk_total_bytes),
        "disk_free_gb": _gb(facts.disk_free_bytes),
        "load_1m": facts.load[0] if facts.load else None,
    }
    # What the machine could not tell keeps its last known value.
    before = await checks_repo.record_answer(
        session,
        server_id=target.server_id,
        capacity={k: v for k, v in capacity.items() if v is not None},
        problems="; ".join(facts.problems) or None,
        now=now,
    )
    if before is None:
        return None
    back = await checks_repo.bring_back_online(session, server_id=target.server_id)
    status = _ONLINE if back else before

    raised, resolved = [], []
    if await _resolve(session, target, UNREACHABLE, now):
        resolved.append(UNREACHABLE)
    free = capacity["disk_free_gb"]
    if free is not None:
        t = policy.thresholds
        level = "critical" if free < t.disk_critical_gb else "warning" if free < t.disk_warning_gb else None
        if level is None:
            if await _resolve(session, target, DISK_LOW, now):
                resolved.append(DISK_LOW)
        else:
            limit = t.disk_critical_gb if level == "critical" else t.disk_warning_gb
            consequence = "; it takes no new builds" if level == "critical" else ""
            await alerts.raise_alert(
                session=session,
                resource_kind=RESOURCE_KIND,
                resource_id=target.server_id,
                kind=DISK_LOW,
                severity=level,
                message=f"build server {target.hostname}: {free:g} GB free for build workspaces, "
                f"below the {level} threshold of {limit:g} GB{consequence}",
                now=now,
            )
            raised.append(DISK_LOW)
    return CheckResult(
        server_id=target.server_id,
        hostname=target.hostname,
        answered=True,
        status=status,
        previous_status=before,
        failures=0,
        disk_free_gb=float(free) if free is not None else None,
        raised=tuple(raised),
        resolved=tuple(resolved),
    )


async def _unanswered(
    session: AsyncSession, target: Target, error: str, policy: HealthPolicy, now: datetime
) -> CheckResult | None:
    row = await checks_repo.record_failure(session, server_id=target.server_id, error=error, now=now)
    if row is None:
        return None
    missed = Missed(*row, limit=policy.failure_limit)
    result = missed.result(CheckResult, hostname=target.hostname, error=error, server_id=target.server_id)
    if not missed.past_limit:
        return result
    down = await checks_repo.take_offline(session, server_id=target.server_id)
    why = missed.says("build server", target.hostname, error)
    if missed.unreachable:
        await raise_unreachable(session, RESOURCE_KIND, target.server_id, why, now)
    # Also in maintenance: a machine that answered none of N checks runs no build any more.
    jobs = await take_running_builds(
        session=session, server_id=target.server_id, reason=why, max_attempts=policy.max_attempts, now=now
    )
    return replace(
        result,
        status=OFFLINE if down else missed.before,
        raised=(UNREACHABLE,) if missed.unreachable else (),
        jobs=tuple(jobs),
    )


async def _resolve(session: AsyncSession, target: Target, kind: str, now: datetime) -> bool:
    done = await alerts.resolve_alert(
        session=session, resource_kind=RESOURCE_KIND, resource_id=target.server_id, kind=kind, now=now
    )
    return done is not None


async def take_running_builds(
    *, session: AsyncSession, server_id: int, reason: str, max_attempts: int, now: datetime | None = None
) -> list[tuple[int, str]]:
    """The server's running builds requeued (or failed past ``max_attempts``) with ``reason``,
    said in their logs too; their holders lose their leases. The caller commits and announces."""
    touched = await server_queue.requeue_server(
        session, server_id=server_id, reason=reason, max_attempts=max_attempts, now=now or utcnow()
    )
    for job_id, outcome in touched:
        await build_queue.note_unheld(session=session, job_id=job_id, line=f"{reason} ({outcome})")
    return touched
