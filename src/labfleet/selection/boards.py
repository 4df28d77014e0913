"""Choosing a physical board (R6.2, R10, R11.3, R11.4, R12.1, R13.3, R13.4, R13.5).

Filter, then rank:

1. A board is excluded for good (as the pool stands) if it is decommissioned, of another
   architecture or board type, lacks a required peripheral or label. It is excluded for
   now if it is in maintenance, offline, being flashed (locked, R6.2), failed (recovery did
   not bring it back: it needs a person), did not answer its last health check, or is held
   by a reservation. A pinned request excludes every other board.
2. Eligible boards rank healthy (``online``) before ``degraded``: a board over a health
   threshold is not as suitable as one that is not, whatever its use. Within each, by a
   score in [0, 1], higher is better, the weighted mean of:

   - ``usage``: ``1 / (1 + uses)``, ``uses`` being its allocations in the caller's window;
   - ``health``: ``1 / (1 + consecutive failed checks)``; 0.5 when never checked.

   Weights are ``BoardWeights`` (default 0.7, 0.3), normalised to sum 1. Ties go to the
   least recently used (never used first), then the lower id. So equal boards take turns
   (R13.4) and the result is deterministic.

Outcomes as for hosts: ``assigned``; ``unavailable`` when boards match but none is free
now, with ``alternatives``; ``rejected`` when none could ever match (the API answers 422).
Alternatives (R11.4) are, best first: for a pinned request, the other boards free now; then
matching boards that are not, those that free up soonest first (see ``_nearness``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture, BoardStatus
from labfleet.selection.explanation import (
    CandidateReport,
    Exclusion,
    Explanation,
    Note,
    NoteCode,
    Outcome,
    Reason,
    Rejection,
    Score,
    ScorePart,
)

_ROUND = 6
"""Scores are rounded so that equal boards tie exactly, whatever the float noise."""


@dataclass(frozen=True, slots=True)
class BoardCandidate:
    """A board as selection sees it: a snapshot the service reads from the database."""

    id: int
    name: str
    status: BoardStatus
    architecture: Architecture
    board_type: str
    peripherals: frozenset[str] = frozenset()
    labels: Mapping[str, str] = field(default_factory=dict)
    reachable: bool | None = None
    """The last health check's answer; ``None`` when never checked."""
    consecutive_failures: int = 0
    held: bool = False
    """Held by an active reservation."""
    held_by: str | None = None
    held_until: datetime | None = None
    uses: int = 0
    """Allocations in the window the caller counts (e.g. the last 7 days)."""
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BoardRequest:
    architecture: Architecture
    board_type: str | None = None
    peripherals: frozenset[str] = frozenset()
    """Peripherals the board must have wired (all of them)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels the board must carry, each with this value."""
    board_id: int | None = None
    """A pinned board; ``None`` is ``auto``."""


@dataclass(frozen=True, slots=True)
class BoardWeights:
    usage: float = 0.7
    health: float = 0.3

    def __post_init__(self) -> None:
        if self.usage < 0 or self.health < 0 or self.usage + self.health <= 0:
            raise Invalid("weights must be non-negative and not all zero", field="weights")

    def normalised(self) -> dict[str, float]:
        total = self.usage + self.health
        return {"usage": self.usage / total, "health": self.health / total}


@dataclass(frozen=True, slots=True)
class BoardAlternative:
    """A board to suggest when the request cannot be placed as asked (R11.4).

    ``available_now``: it could take the request now (the pinned board could not).
    Otherwise ``lacks`` says what stands in the way, and a holder and the end of its
    reservation say when it may be free.
    """

    id: int
    name: str
    available_now: bool
    lacks: tuple[Reason, ...]
    held_by: str | None
    held_until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "available_now": self.available_now,
            "lacks": [r.as_dict() for r in self.lacks],
            "held_by": self.held_by,
            "held_until": self.held_until.isoformat() if self.held_until is not None else None,
        }


@dataclass(frozen=True, slots=True)
class BoardDecision:
    """The choice: a board (or none), why, and what else to try when none can be had."""

    chosen: BoardCandidate | None
    explanation: Explanation
    alternatives: tuple[BoardAlternative, ...] = ()
    rejected: Rejection | None = None

    @property
    def outcome(self) -> Outcome:
        return self.explanation.outcome

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen_id": self.chosen.id if self.chosen is not None else None,
            "rejected": self.rejected.as_dict() if self.rejected is not None else None,
            "alternatives": [a.as_dict() for a in self.alternatives],
            "explanation": self.explanation.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class _Assessment:
    candidate: BoardCandidate
    permanent: tuple[Reason, ...]
    """Reasons that will not pass on their own: they make a request unplaceable (422)."""
    transient: tuple[Reason, ...]
    """Reasons that pass when a reservation ends, flashing finishes or an operator acts."""

    @property
    def eligible(self) -> bool:
        return not self.permanent and not self.transient


# Reasons are frozen, so one object serves every board with the same mismatch: with
# thousands of candidates, building each sentence once matters.
@cache
def _other_architecture(have: Architecture, want: Architecture) -> Reason:
    return Reason(Exclusion.architecture, f"is {have.value}, not {want.value}")


@cache
def _other_type(have: str, want: str) -> Reason:
    return Reason(Exclusion.board_type, f"is a {have}, not a {want}")


_DECOMMISSIONED = Reason(Exclusion.decommissioned, "decommissioned: out of the pool")


def _permanent_reasons(b: BoardCandidate, request: BoardRequest) -> list[Reason]:
    reasons: list[Reason] = []
    if b.status is BoardStatus.decommissioned:
        reasons.append(_DECOMMISSIONED)
    if b.architecture != request.architecture:
        reasons.append(_other_architecture(b.architecture, request.architecture))
    if request.board_type is not None and b.board_type != request.board_type:
        reasons.append(_other_type(b.board_type, request.board_type))
    if request.peripherals and not request.peripherals <= b.peripherals:
        missing = request.peripherals - b.peripherals
        reasons.append(Reason(Exclusion.peripherals, f"lacks {', '.join(sorted(missing))}"))
    if request.labels:
        absent = [f"{k}={v}" for k, v in request.labels.items() if b.labels.get(k) != v]
        if absent:
            reasons.append(Reason(Exclusion.labels, f"lacks label {', '.join(sorted(absent))}"))
    return reasons


_STATUS_REASONS = {
    BoardStatus.maintenance: Reason(Exclusion.maintenance, "in maintenance"),
    BoardStatus.offline: Reason(Exclusion.offline, "offline"),
    BoardStatus.flashing: Reason(Exclusion.flashing, "being flashed: locked until it is done"),
    BoardStatus.failed: Reason(Exclusion.failed, "failed: recovery did not bring it back, it needs a person"),
}


_UNREACHABLE = Reason(Exclusion.unreachable, "did not answer its last health check")


def _transient_reasons(b: BoardCandidate) -> list[Reason]:
    reasons: list[Reason] = []
    by_status = _STATUS_REASONS.get(b.status)
    if by_status is not None:
        reasons.append(by_status)
    if b.reachable is False:
        reasons.append(_UNREACHABLE)
    if b.held:
        holder = f" by {b.held_by}" if b.held_by else ""
        until = f" until {b.held_until.isoformat(timespec='minutes')}" if b.held_until else ""
        reasons.append(Reason(Exclusion.reserved, f"held{holder}{until}"))
    return reasons


def _assess(b: BoardCandidate, request: BoardRequest) -> _Assessment:
    return _Assessment(b, tuple(_permanent_reasons(b, request)), tuple(_transient_reasons(b)))


def _notes(b: BoardCandidate) -> tuple[Note, ...]:
    notes: list[Note] = []
    if b.status is BoardStatus.degraded:
        notes.append(Note(NoteCode.degraded, "degraded: over a health warning threshold"))
    if b.reachable is None:
        notes.append(Note(NoteCode.health_unknown, "not health-checked yet"))
    if b.consecutive_failures > 0:
        notes.append(
            Note(NoteCode.recent_failures, f"{b.consecutive_failures} failed health check(s) in a row")
        )
    return tuple(notes)


def _score(b: BoardCandidate, weights: Mapping[str, float]) -> Score:
    uses = max(b.uses, 0)
    last = b.last_used_at.isoformat(timespec="minutes") if b.last_used_at is not None else "never"
    if b.reachable is None:
        health, health_detail = 0.5, "never checked, neutral"
    else:
        failures = max(b.consecutive_failures, 0)
        health, health_detail = 1.0 / (1 + failures), f"{failures} failed check(s) in a row"
    parts = (
        ScorePart("usage", round(1.0 / (1 + uses), _ROUND), weights["usage"], f"{uses} use(s), last {last}"),
        ScorePart("health", round(health, _ROUND), weights["health"], health_detail),
    )
    return Score(round(sum(p.contribution for p in parts), _ROUND), parts)


def _rank_key(b: BoardCandidate, score: Score) -> tuple[int, float, bool, float, int]:
    last = b.last_used_at.timestamp() if b.last_used_at is not None else 0.0
    degraded = 1 if b.status is BoardStatus.degraded else 0
    return (degraded, -score.total, b.last_used_at is not None, last, b.id)


_WAIT = {
    Exclusion.reserved: 1,
    Exclusion.flashing: 1,
    Exclusion.unreachable: 2,
    Exclusion.maintenance: 3,
    Exclusion.offline: 3,
    Exclusion.failed: 4,
}
"""How soon a reason usually passes: reservations end and flashing finishes on their own; a
recovery may answer at the next check; maintenance, outages and failures need someone."""


def _nearness(a: _Assessment) -> tuple[int, int, bool, float, int]:
    """Nearest first: what passes soonest, the fewest obstacles, the reservation ending first."""
    b = a.candidate
    wait = max(_WAIT.get(r.code, 4) for r in a.transient)
    until = b.held_until.timestamp() if b.held_until is not None else 0.0
    return (wait, len(a.transient), b.held_until is None, until, b.id)


def _alternatives(
    request: BoardRequest, assessments: Sequence[_Assessment], weights: Mapping[str, float], limit: int
) -> tuple[BoardAlternative, ...]:
    others = [a for a in assessments if a.candidate.id != request.board_id]
    now = sorted(
        (a for a in others if a.eligible),
        key=lambda a: _rank_key(a.candidate, _score(a.candidate, weights)),
    )
    later = sorted((a for a in others if not a.permanent and a.transient), key=_nearness)
    return tuple(
        BoardAlternative(
            a.candidate.id,
            a.candidate.name,
            a.eligible,
            a.transient,
            a.candidate.held_by if a.candidate.held else None,
            a.candidate.held_until if a.candidate.held else None,
        )
        for a in [*now, *later][:limit]
    )


def _rejection(request: BoardRequest, assessments: Sequence[_Assessment]) -> Rejection:
    """The first requirement no board in the pool meets, in the order a person would check them."""
    if request.board_id is not None:
        pinned = next((a for a in assessments if a.candidate.id == request.board_id), None)
        if pinned is None:
            return Rejection(Exclusion.not_pinned, f"no board with id {request.board_id}")
        first = pinned.permanent[0]
        return Rejection(first.code, f"board {pinned.candidate.name} cannot take it: {first.message}")

    def meeting(pool: list[_Assessment], code: Exclusion) -> list[_Assessment]:
        return [a for a in pool if not any(r.code is code for r in a.permanent)]

    what = f"{request.architecture.value} board"
    pool = meeting(list(assessments), Exclusion.decommissioned)
    pool = meeting(pool, Exclusion.architecture)
    if not pool:
        return Rejection(Exclusion.architecture, f"no {what} in the pool")
    if request.board_type is not None:
        pool = meeting(pool, Exclusion.board_type)
        if not pool:
            return Rejection(Exclusion.board_type, f"no {what} in the pool is a {request.board_type}")
        what = f"{request.architecture.value} {request.board_type}"
    if request.peripherals:
        pool = meeting(pool, Exclusion.peripherals)
        wanted = ", ".join(sorted(request.peripherals))
        if not pool:
            return Rejection(Exclusion.peripherals, f"no {what} in the pool has {wanted}")
        what += f" with {wanted}"
    wanted = ", ".join(f"{k}={v}" for k, v in sorted(request.labels.items()))
    return Rejection(Exclusion.labels, f"no {what} in the pool has the labels {wanted}")


def _request_dict(request: BoardRequest) -> dict[str, Any]:
    return {
        "architecture": request.architecture.value,
        "board_type": request.board_type,
        "peripherals": sorted(request.peripherals),
        "labels": dict(request.labels),
        "board_id": request.board_id,
    }


def select_board(
    *,
    request: BoardRequest,
    candidates: Sequence[BoardCandidate],
    weights: BoardWeights | None = None,
    max_alternatives: int = 3,
) -> BoardDecision:
    """Choose a board for ``request`` among ``candidates`` and explain the choice."""
    normalised = (weights or BoardWeights()).normalised()
    seen: set[int] = set()
    for b in candidates:
        if b.id in seen:
            raise Invalid(f"board {b.id} is a candidate twice", field="candidates")
        seen.add(b.id)

    assessments = [_assess(b, request) for b in candidates]
    pinned = request.board_id
    ranked: list[tuple[tuple[int, float, bool, float, int], BoardCandidate, Score]] = []
    excluded: list[CandidateReport] = []
    not_pinned = Reason(Exclusion.not_pinned, f"the request is pinned to board {pinned}")
    for a in assessments:
        b = a.candidate
        if pinned is not None and b.id != pinned:
            excluded.append(CandidateReport(b.id, b.name, (not_pinned,), ()))
        elif not a.eligible:
            excluded.append(CandidateReport(b.id, b.name, a.permanent + a.transient, ()))
        else:
            score = _score(b, normalised)
            ranked.append((_rank_key(b, score), b, score))
    ranked.sort(key=lambda item: item[0])
    reports = tuple(
        [
            CandidateReport(b.id, b.name, (), _notes(b), score=score, rank=i + 1, can_start_now=True)
            for i, (_, b, score) in enumerate(ranked)
        ]
        + excluded
    )
    request_dict = _request_dict(request)

    def explain(outcome: Outcome, summary: str, chosen_id: int | None = None) -> Explanation:
        return Explanation(outcome, summary, request_dict, normalised, reports, chosen_id)

    if ranked:
        _, best, score = ranked[0]
        summary = f"{best.name} chosen: score {score.total:.3f}, {best.uses} recent use(s)"
        return BoardDecision(best, explain(Outcome.assigned, summary, best.id))

    alternatives = _alternatives(request, assessments, normalised, max_alternatives)
    in_play = [a for a in assessments if pinned is None or a.candidate.id == pinned]
    if any(not a.permanent for a in in_play):
        if pinned is not None:
            target = in_play[0]
            summary = f"board {target.candidate.name} cannot be had now: {target.transient[0].message}"
        else:
            matching = sum(1 for a in in_play if not a.permanent)
            summary = f"{matching} board(s) match, none is free now"
        return BoardDecision(None, explain(Outcome.unavailable, summary), alternatives)
    rejection = _rejection(request, assessments)
    return BoardDecision(None, explain(Outcome.rejected, rejection.message), alternatives, rejection)
