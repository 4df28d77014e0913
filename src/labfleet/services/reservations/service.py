"""Reservations: a host's capacity or a whole board, held for an owner until release or expiry
(R11.5, R12.1, R12.4; property 20).

Never over-committed, never double-booked, also across processes: reserving locks the
host's or board's row first and counts what is held under that lock; a board's single
holder is also enforced by a partial unique index. A host's capacity is its CPU cores as
vCPUs, its memory and its storage, without over-commit. Expired reservations count as free
at once and are released (``released_at``, reason ``expired``) by the next sweep or the
next reservation of the same resource.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labfleet.db.base import utcnow
from labfleet.db.models import Reservation
from labfleet.db.repositories import reservations as repo
from labfleet.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from labfleet.schemas.auth import SYSTEM, Actor
from labfleet.schemas.enums import Role
from labfleet.schemas.query import ListQuery
from labfleet.schemas.reservations import AutoBoard, AutoHost, ReservationCreate
from labfleet.selection import Outcome
from labfleet.services.core import audit
from labfleet.services.reservations import allocation

OBJECT_TYPE = "reservation"
# Statuses in which a resource takes new reservations (R12.1): maintenance, offline,
# flashing, failed and decommissioned ones take none.
HOST_TAKES = frozenset({"online", "degraded"})
BOARD_TAKES = frozenset({"online", "degraded"})
MAX_TRIES = 5
"""How many choices an ``auto`` reservation tries when others take them first."""


def snapshot(r: Reservation) -> dict[str, Any]:
    return {
        "host_id": r.host_id,
        "board_id": r.board_id,
        "owner": r.owner,
        "team": r.team,
        "purpose": r.purpose,
        "vcpus": r.vcpus,
        "memory_mb": r.memory_mb,
        "disk_gb": r.disk_gb,
        "expires_at": r.expires_at.isoformat(),
        "released_at": r.released_at.isoformat() if r.released_at else None,
        "release_reason": r.release_reason,
    }


def display(r: Reservation) -> str:
    what = f"host {r.host_id}" if r.host_id is not None else f"board {r.board_id}"
    return f"#{r.id} {what} for {r.owner}"


def is_active(r: Reservation, now: datetime | None = None) -> bool:
    return r.released_at is None and r.expires_at > (now or utcnow())


async def reserve(
    *,
    session: AsyncSession,
    actor: Actor,
    data: ReservationCreate,
    now: datetime | None = None,
    skip: Collection[int] = (),
) -> Reservation:
    """Hold what ``data`` asks for, or ``Conflict`` saying what is in the way; nothing else changes.

    An ``auto`` target is chosen first (``services/reservations/allocation.py``): ``Invalid`` when nothing in
    the pool could ever take it, ``Unavailable`` with alternatives when nothing can now.
    ``skip``: resources an ``auto`` target must not choose (ones that just failed to provision).
    """
    now = now or utcnow()
    if data.target is not None:
        return await _reserve_auto(session, actor, data, data.target, now, skip)
    ask = _Ask(data.host_id, data.board_id, data.vcpus, data.memory_mb, data.disk_gb)
    return await _hold(session, actor, ask, purpose=data.purpose, expires_in_s=data.expires_in_s, now=now)


@dataclass(frozen=True, slots=True)
class _Ask:
    host_id: int | None
    board_id: int | None
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: float = 0.0


async def _hold(
    session: AsyncSession,
    actor: Actor,
    ask: _Ask,
    *,
    purpose: str,
    expires_in_s: int,
    now: datetime,
    decision: dict[str, Any] | None = None,
) -> Reservation:
    """Lock the host or board, check it can take ``ask`` under the lock, insert, audit."""
    reservation = Reservation(
        host_id=ask.host_id,
        board_id=ask.board_id,
        owner=actor.name,
        team=actor.team,
        purpose=purpose,
        vcpus=ask.vcpus,
        memory_mb=ask.memory_mb,
        disk_gb=ask.disk_gb,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in_s),
        decision=decision,
    )
    if ask.host_id is not None:
        await _check_host(session, ask, now)
    else:
        assert ask.board_id is not None
        await _check_board(session, ask.board_id, now)
    try:
        async with session.begin_nested():
            session.add(reservation)
            await session.flush()
    except IntegrityError as exc:
        # Only the board's partial unique index can refuse it here: another holder got in.
        holder = await repo.holder_of_board(session, ask.board_id or 0)
        raise Conflict(_held_message(ask.board_id or 0, holder), field="board_id") from exc
    await audit.record(
        session=session,
        actor=actor,
        action="create",
        object_type=OBJECT_TYPE,
        object_id=reservation.id,
        display=display(reservation),
        after=snapshot(reservation),
    )
    return reservation


async def _reserve_auto(
    session: AsyncSession,
    actor: Actor,
    data: ReservationCreate,
    target: AutoHost | AutoBoard,
    now: datetime,
    skip: Collection[int] = (),
) -> Reservation:
    """Choose, then hold the choice under its lock; if it was taken meanwhile (another request
    got there first), choose again without it, at most ``MAX_TRIES`` times."""
    refused: list[dict[str, Any]] = []
    choice: allocation.Choice | None = None
    for _ in range(MAX_TRIES):
        choice = await allocation.choose(session, target, now=now, skip={*skip, *(r["id"] for r in refused)})
        decision = allocation.with_refusals(choice.decision, refused)
        if choice.chosen_id is None:
            if choice.outcome is Outcome.rejected and not refused:
                assert choice.rejection is not None
                raise Invalid(choice.rejection, field=choice.field)
            alternatives = [*refused, *choice.alternatives][: allocation.MAX_ALTERNATIVES]
            summary = (
                choice.summary if choice.outcome is not Outcome.rejected else "taken by others meanwhile"
            )
            raise Unavailable(
                f"no {choice.kind} can take it now: {summary}"
                + (f"; {len(alternatives)} alternative(s) suggested" if alternatives else ""),
                alternatives=alternatives,
                decision=decision,
                field="target",
            )
        if isinstance(target, AutoHost):
            ask = _Ask(choice.chosen_id, None, target.vcpus, target.memory_mb, target.disk_gb)
        else:
            ask = _Ask(None, choice.chosen_id)
        try:
            return await _hold(
                session,
                actor,
                ask,
                purpose=data.purpose,
                expires_in_s=data.expires_in_s,
                now=now,
                decision=decision,
            )
        except (Conflict, NotFound) as exc:
            assert choice.chosen_name is not None
            refused.append(allocation.refused_alternative(choice.chosen_id, choice.chosen_name, exc.message))
    assert choice is not None
    raise Unavailable(
        f"no {choice.kind} can take it now: the {MAX_TRIES} best were taken by others meanwhile; try again",
        alternatives=refused,
        decision=allocation.with_refusals(choice.decision, refused),
        field="target",
    )


async def _check_host(session: AsyncSession, data: _Ask, now: datetime) -> None:
    assert data.host_id is not None
    host = await repo.lock_host(session, data.host_id)
    if host is None:
        raise NotFound(f"no host with id {data.host_id}", field="host_id")
    if host.status not in HOST_TAKES:
        raise Conflict(
            f"host {host.hostname} is {host.status}: it takes no new reservations", field="host_id"
        )
    await expire_due(session=session, now=now, host_id=host.id)
    used = await repo.host_usage(session, host.id, now)
    lacking = []
    for what, asked, held, capacity, unit in (
        ("vCPUs", data.vcpus, used.vcpus, host.cpu_cores, ""),
        ("memory", data.memory_mb, used.memory_mb, host.memory_mb, " MB"),
        ("disk", data.disk_gb, used.disk_gb, host.storage_gb, " GB"),
    ):
        if not asked:
            continue
        if capacity is None:
            lacking.append(f"its {what} capacity is unknown (never detected)")
        elif held + asked > capacity:
            free = max(capacity - held, 0)
            lacking.append(f"{what}: {asked:g}{unit} asked, {free:g}{unit} free of {capacity:g}{unit}")
    if lacking:
        raise Conflict(f"host {host.hostname} cannot hold it: {'; '.join(lacking)}", field="host_id")


async def _check_board(session: AsyncSession, board_id: int, now: datetime) -> None:
    board = await repo.lock_board(session, board_id)
    if board is None:
        raise NotFound(f"no board with id {board_id}", field="board_id")
    if board.status not in BOARD_TAKES:
        raise Conflict(
            f"board {board.name} is {board.status}: it takes no new reservations", field="board_id"
        )
    await expire_due(session=session, now=now, board_id=board_id)
    holder = await repo.holder_of_board(session, board_id)
    if holder is not None:
        raise Conflict(_held_message(board_id, holder, name=board.name), field="board_id")


def _held_message(board_id: int, holder: Reservation | None, *, name: str | None = None) -> str:
    what = f"board {name or board_id}"
    if holder is None:
        return f"{what} was reserved by someone else just now"
    return (
        f"{what} is held by reservation #{holder.id} ({holder.owner}, {holder.purpose!r}) "
        f"until {holder.expires_at.isoformat(timespec='seconds')}"
    )


async def get(*, session: AsyncSession, ident: int) -> Reservation:
    found = await repo.get(session, ident)
    if found is None:
        raise NotFound(f"no reservation with id {ident}", field="id")
    return found


async def search(
    *, session: AsyncSession, query: ListQuery, only_active: bool = True
) -> tuple[int, list[Reservation]]:
    """A page of reservations, newest first; ``query.fields`` are columns (``host_id``,
    ``board_id``, ``owner``, ``team``) and the values they must equal."""
    return await repo.page(
        session,
        now=utcnow(),
        only_active=only_active,
        fields=query.fields,
        limit=query.limit,
        offset=query.offset,
    )


def _may_change(actor: Actor, r: Reservation) -> None:
    if actor.name != r.owner and not actor.can(Role.admin):
        raise Forbidden(f"reservation #{r.id} belongs to {r.owner}; only they or an admin may change it")


async def release(
    *, session: AsyncSession, actor: Actor, ident: int, reason: str | None = None
) -> Reservation:
    """Give back exactly what was held. Releasing one already released or expired is a Conflict."""
    r = await get(session=session, ident=ident)
    _may_change(actor, r)
    before = snapshot(r)
    now = utcnow()
    if not await repo.release(session, ident=ident, now=now, reason=reason or f"released by {actor.name}"):
        raise Conflict(f"reservation #{ident} was already released ({r.release_reason})")
    return await _audited(session, ident, "release", before, actor=actor)


async def release_for(*, session: AsyncSession, ident: int, reason: str, now: datetime | None = None) -> bool:
    """Release on behalf of what holds it (an environment being torn down); False if it was already.

    labfleet itself releases it, so the audit entry names labfleet and the reason.
    """
    r = await get(session=session, ident=ident)
    before = snapshot(r)
    if not await repo.release(session, ident=ident, now=now or utcnow(), reason=reason):
        return False
    await _audited(session, ident, "release", before)
    return True


async def extend(*, session: AsyncSession, actor: Actor, ident: int, expires_in_s: int) -> Reservation:
    r = await get(session=session, ident=ident)
    _may_change(actor, r)
    before = snapshot(r)
    now = utcnow()
    if expires_in_s <= 0:
        raise Invalid("the new expiry must be in the future", field="expires_in_s")
    if not await repo.extend(session, ident=ident, now=now, expires_at=now + timedelta(seconds=expires_in_s)):
        state = "released" if r.released_at else "expired"
        raise Conflict(f"reservation #{ident} has {state}; make a new one")
    return await _audited(session, ident, "extend", before, actor=actor)


async def expire_due(
    *,
    session: AsyncSession,
    now: datetime | None = None,
    host_id: int | None = None,
    board_id: int | None = None,
) -> list[int]:
    """Release every reservation past its expiry (a cancelled CI job must not hold a board forever),
    optionally on one host or board only; each one released is audited as expired by labfleet."""
    released = list(
        await repo.release_expired(session, now=now or utcnow(), host_id=host_id, board_id=board_id)
    )
    for ident in released:
        await _audited(session, ident, "expire", {"released_at": None})
    return released


async def _audited(
    session: AsyncSession, ident: int, action: str, before: dict[str, Any], *, actor: Actor = SYSTEM
) -> Reservation:
    """The reservation as the change left it, with its audit entry (labfleet's own by default)."""
    r = await get(session=session, ident=ident)  # read afresh: the change was a bulk UPDATE
    await audit.record(
        session=session,
        actor=actor,
        action=action,
        object_type=OBJECT_TYPE,
        object_id=r.id,
        display=display(r),
        before=before,
        after=snapshot(r),
    )
    return r


async def ensure_unreserved(
    *, session: AsyncSession, doing: str, host_id: int | None = None, board_id: int | None = None
) -> None:
    """``Conflict`` naming the active reservations of a host or board (R12.4)."""
    held = await repo.active_on(session, now=utcnow(), host_id=host_id, board_id=board_id)
    if held:
        what = f"host {host_id}" if host_id is not None else f"board {board_id}"
        ids = ", ".join(f"#{i}" for i in held)
        raise Conflict(f"cannot {doing} {what}: reservation {ids} holds it; release it first")
