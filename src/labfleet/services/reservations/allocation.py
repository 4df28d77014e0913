"""Choosing a host or a board for an ``auto`` reservation (R11.3, R11.4, R13.2-13.5).

Reads the pool as it stands (``db/repositories/allocation.py``: one snapshot, nothing
locked), turns it into the frozen candidates ``selection`` takes, and asks it. The service
that reserves then locks what was chosen and checks it again: a snapshot may be stale by
the time the lock is held, and the lock is what keeps capacity from being over-committed.

A candidate's facts:

- a host runs its ``native_architecture`` natively (x86_64 hosts run i386 natively too,
  when libvirt offers it), and with KVM when it has KVM; every other architecture its
  libvirt has machine types for is emulated. A host registered without a native
  architecture (before it was recorded, or without device checks) emulates everything;
- its reserved capacity is the sum of its active reservations, its utilization the latest
  sample;
- a board's uses are its reservations of the last ``USES_WINDOW``, its last use the
  latest ever; it is held while an active reservation holds it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.repositories import allocation as repo
from labfleet.schemas.enums import Architecture, BoardStatus, ServerStatus
from labfleet.schemas.reservations import AutoBoard, AutoHost
from labfleet.selection import (
    BoardCandidate,
    BoardRequest,
    HostCandidate,
    HostRequest,
    HostUtilization,
    NoteCode,
    Outcome,
    architectures_of,
    select_board,
    select_host,
)

USES_WINDOW = timedelta(days=7)
"""How far back a board's uses count for load balancing (R13.4)."""
MAX_ALTERNATIVES = 5

# Notes on a chosen board worth a warning, as hosts have their capacity warnings.
_BOARD_WARNINGS = frozenset({NoteCode.degraded, NoteCode.recent_failures})
# What selection's rejection is about -> the request field that asked for it.
_FIELD_OF = {
    "architecture": "target.architecture",
    "no_kvm": "target.kvm",
    "labels": "target.labels",
    "board_type": "target.board_type",
    "peripherals": "target.peripherals",
}


@dataclass(frozen=True, slots=True)
class Choice:
    """What selection decided, in the terms the reservation service needs."""

    kind: Literal["host", "board"]
    outcome: Outcome
    chosen_id: int | None
    chosen_name: str | None
    summary: str
    rejection: str | None
    """Why nothing in the pool could ever take it (``outcome`` is ``rejected``)."""
    field: str
    """The request field a rejection is about."""
    alternatives: list[dict[str, Any]]
    decision: dict[str, Any]
    """The whole decision as stored with the reservation: ``as_dict()`` plus ``warnings``."""
    warnings: list[dict[str, Any]]


# -- hosts


def host_candidate(row: repo.HostRow) -> HostCandidate:
    h = row.host
    offered = architectures_of(h.machine_types)
    native: set[Architecture] = set()
    if h.native_architecture is not None and h.native_architecture in Architecture.__members__:
        arch = Architecture(h.native_architecture)
        native.add(arch)
        if arch is Architecture.x86_64 and Architecture.i386 in offered:
            native.add(Architecture.i386)
    sample = row.sample
    return HostCandidate(
        id=h.id,
        name=h.hostname,
        status=ServerStatus(h.status),
        native_architectures=frozenset(native),
        emulated_architectures=offered - native,
        kvm=h.kvm,
        cpu_cores=h.cpu_cores,
        memory_mb=h.memory_mb,
        storage_gb=h.storage_gb,
        reserved_vcpus=row.usage.vcpus,
        reserved_memory_mb=row.usage.memory_mb,
        reserved_disk_gb=row.usage.disk_gb,
        reservations=row.usage.count,
        utilization=None
        if sample is None
        else HostUtilization(sample.cpu_pct, sample.memory_pct, sample.storage_pct),
        utilization_threshold_pct=float(h.utilization_threshold_pct),
        labels=row.labels,
    )


def _too_small_field(target: AutoHost, candidates: Collection[HostCandidate]) -> str:
    """Which size no host that could otherwise run it has: vCPUs, memory or disk."""
    able = [
        c
        for c in candidates
        if c.status is not ServerStatus.decommissioned and c.acceleration(target.architecture) is not None
    ]
    sizes: list[tuple[str, float, list[float | None]]] = [
        ("vcpus", target.vcpus, [c.cpu_cores for c in able]),
        ("memory_mb", target.memory_mb, [c.memory_mb for c in able]),
        ("disk_gb", target.disk_gb, [c.storage_gb for c in able]),
    ]
    for name, asked, totals in sizes:
        if totals and all(t is not None and t < asked for t in totals):
            return f"target.{name}"
    return "target"


async def choose_host(
    session: AsyncSession, target: AutoHost, *, now: datetime, skip: Collection[int] = ()
) -> Choice:
    """The best host for ``target`` now, leaving out ``skip`` (hosts that just refused it)."""
    candidates = [host_candidate(r) for r in await repo.hosts(session, now=now) if r.host.id not in skip]
    decision = select_host(
        request=HostRequest(
            architecture=target.architecture,
            vcpus=target.vcpus,
            memory_mb=target.memory_mb,
            disk_gb=target.disk_gb,
            kvm_required=target.kvm,
            labels=dict(target.labels),
        ),
        candidates=candidates,
        max_alternatives=MAX_ALTERNATIVES,
    )
    rejected = decision.rejected
    field_ = "target"
    if rejected is not None:
        code = rejected.code.value
        field_ = (
            _too_small_field(target, candidates) if code == "too_small" else _FIELD_OF.get(code, "target")
        )
    record = decision.as_dict()
    return Choice(
        kind="host",
        outcome=decision.outcome,
        chosen_id=decision.chosen.id if decision.chosen is not None else None,
        chosen_name=decision.chosen.name if decision.chosen is not None else None,
        summary=decision.explanation.summary,
        rejection=rejected.message if rejected is not None else None,
        field=field_,
        alternatives=[a.as_dict() for a in decision.alternatives],
        decision=record,
        warnings=list(record.get("warnings", [])),
    )


# -- boards


def board_candidate(row: repo.BoardRow) -> BoardCandidate:
    b = row.board
    health = row.health
    holder = row.holder
    return BoardCandidate(
        id=b.id,
        name=b.name,
        status=BoardStatus(b.status),
        architecture=Architecture(b.architecture),
        board_type=b.board_type,
        peripherals=row.peripherals,
        labels=row.labels,
        reachable=health.reachable if health is not None else None,
        consecutive_failures=health.consecutive_failures if health is not None else 0,
        held=holder is not None,
        held_by=f"reservation #{holder.reservation_id} ({holder.owner})" if holder is not None else None,
        held_until=holder.expires_at if holder is not None else None,
        uses=row.uses,
        last_used_at=row.last_used_at,
    )


async def choose_board(
    session: AsyncSession, target: AutoBoard, *, now: datetime, skip: Collection[int] = ()
) -> Choice:
    """The best board for ``target`` now, leaving out ``skip`` (boards that just refused it)."""
    rows = await repo.boards(session, now=now, uses_since=now - USES_WINDOW)
    # Registration only takes known architectures; a row of another could match no request anyway.
    candidates = [
        board_candidate(r)
        for r in rows
        if r.board.id not in skip and r.board.architecture in Architecture.__members__
    ]
    decision = select_board(
        request=BoardRequest(
            architecture=target.architecture,
            board_type=target.board_type,
            peripherals=frozenset(target.peripherals),
            labels=dict(target.labels),
        ),
        candidates=candidates,
        max_alternatives=MAX_ALTERNATIVES,
    )
    chosen = decision.chosen
    warnings: list[dict[str, Any]] = []
    if chosen is not None:
        notes = decision.explanation.report(chosen.id).notes
        warnings = [n.as_dict() for n in notes if n.code in _BOARD_WARNINGS]
    rejected = decision.rejected
    return Choice(
        kind="board",
        outcome=decision.outcome,
        chosen_id=chosen.id if chosen is not None else None,
        chosen_name=chosen.name if chosen is not None else None,
        summary=decision.explanation.summary,
        rejection=rejected.message if rejected is not None else None,
        field=_FIELD_OF.get(rejected.code.value, "target") if rejected is not None else "target",
        alternatives=[a.as_dict() for a in decision.alternatives],
        decision={**decision.as_dict(), "warnings": warnings},
        warnings=warnings,
    )


async def choose(
    session: AsyncSession, target: AutoHost | AutoBoard, *, now: datetime, skip: Collection[int] = ()
) -> Choice:
    if isinstance(target, AutoHost):
        return await choose_host(session, target, now=now, skip=skip)
    return await choose_board(session, target, now=now, skip=skip)


def refused_alternative(ident: int, name: str, message: str) -> dict[str, Any]:
    """A resource that was chosen but refused under its lock (taken meanwhile), as an alternative."""
    return {
        "id": ident,
        "name": name,
        "available_now": False,
        "lacks": [{"code": "refused", "message": message}],
    }


def with_refusals(decision: Mapping[str, Any], refused: list[dict[str, Any]]) -> dict[str, Any]:
    """The decision to store, with what was chosen before and refused under its lock."""
    return {**decision, "refused": refused}
