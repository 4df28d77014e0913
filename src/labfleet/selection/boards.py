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
matching boards that are not, those that free up soonest first (see ``_Boards.nearness``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from labfleet.schemas.enums import Architecture, BoardStatus
from labfleet.selection.common import (
    DECOMMISSIONED,
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
class BoardWeights(ScoreWeights):
    usage: float = 0.7
    health: float = 0.3


@dataclass(frozen=True, slots=True)
class BoardAlternative(Alternative):
    """A board to suggest when the request cannot be placed as asked (R11.4).

    ``available_now``: it could take the request now (the pinned board could not).
    Otherwise ``lacks`` says what stands in the way, and a holder and the end of its
    reservation say when it may be free.
    """

    held_by: str | None
    held_until: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **Alternative.as_dict(self),
            "held_by": self.held_by,
            "held_until": self.held_until.isoformat() if self.held_until is not None else None,
        }


@dataclass(frozen=True, slots=True)
class BoardDecision(Allocation[BoardCandidate, BoardAlternative]):
    """The choice: a board (or none), why, and what else to try when none can be had."""


_Assessment = Assessment[BoardCandidate]


# Reasons are frozen, so one object serves every board with the same mismatch: with
# thousands of candidates, building each sentence once matters.
@cache
def _other_architecture(have: Architecture, want: Architecture) -> Reason:
    return Reason(Exclusion.architecture, f"is {have.value}, not {want.value}")


@cache
def _other_type(have: str, want: str) -> Reason:
    return Reason(Exclusion.board_type, f"is a {have}, not a {want}")


def _permanent_reasons(b: BoardCandidate, request: BoardRequest) -> list[Reason]:
    reasons: list[Reason] = []
    if b.status is BoardStatus.decommissioned:
        reasons.append(DECOMMISSIONED)
    if b.architecture != request.architecture:
        reasons.append(_other_architecture(b.architecture, request.architecture))
    if request.board_type is not None and b.board_type != request.board_type:
        reasons.append(_other_type(b.board_type, request.board_type))
    if request.peripherals and not request.peripherals <= b.peripherals:
        missing = request.peripherals - b.peripherals
        reasons.append(Reason(Exclusion.peripherals, f"lacks {', '.join(sorted(missing))}"))
    if request.labels and (lacking := missing_labels(request.labels, b.labels)) is not None:
        reasons.append(lacking)
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


class _Boards(Allocator[BoardCandidate, _Assessment, BoardAlternative]):
    kind = "board"
    not_now = "cannot be had now"
    some_not_now = "match, none is free now"

    def __init__(self, request: BoardRequest, weights: dict[str, float]) -> None:
        super().__init__(request.board_id, weights, request)
        self.request = request

    def assess(self, b: BoardCandidate) -> _Assessment:
        return Assessment(b, tuple(_permanent_reasons(b, self.request)), tuple(_transient_reasons(b)))

    def notes(self, a: _Assessment) -> tuple[Note, ...]:
        b = a.candidate
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

    def score(self, a: _Assessment) -> Score:
        b = a.candidate
        uses = max(b.uses, 0)
        last = b.last_used_at.isoformat(timespec="minutes") if b.last_used_at is not None else "never"
        if b.reachable is None:
            health, health_detail = 0.5, "never checked, neutral"
        else:
            failures = max(b.consecutive_failures, 0)
            health, health_detail = 1.0 / (1 + failures), f"{failures} failed check(s) in a row"
        return scored(
            self.weights,
            ("usage", 1.0 / (1 + uses), f"{uses} use(s), last {last}"),
            ("health", health, health_detail),
        )

    def rank_key(self, a: _Assessment, score: Score) -> tuple[int, float, bool, float, int]:
        """Healthy first, then the best score, then the least recently used (never used first)."""
        b = a.candidate
        last = b.last_used_at.timestamp() if b.last_used_at is not None else 0.0
        degraded = 1 if b.status is BoardStatus.degraded else 0
        return (degraded, -score.total, b.last_used_at is not None, last, b.id)

    def chosen_summary(self, a: _Assessment, score: Score) -> str:
        return f"{a.candidate.name} chosen: score {score.total:.3f}, {a.candidate.uses} recent use(s)"

    def nearness(self, a: _Assessment) -> tuple[int, int, bool, float, int]:
        """Nearest first: what passes soonest, the fewest obstacles, the reservation ending first."""
        b = a.candidate
        wait = max(_WAIT.get(r.code, 4) for r in a.transient)
        until = b.held_until.timestamp() if b.held_until is not None else 0.0
        return (wait, len(a.transient), b.held_until is None, until, b.id)

    def alternative(self, a: _Assessment) -> BoardAlternative:
        b = a.candidate
        held_by, held_until = (b.held_by, b.held_until) if b.held else (None, None)
        return BoardAlternative(b.id, b.name, a.eligible, a.transient, held_by, held_until)

    def unmatched(self, assessments: Sequence[_Assessment]) -> Rejection:
        request = self.request
        what = f"{request.architecture.value} board"
        pool = meeting(meeting(list(assessments), Exclusion.decommissioned), Exclusion.architecture)
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
        return Rejection(
            Exclusion.labels, f"no {what} in the pool has the labels {describe_labels(request.labels)}"
        )


def select_board(
    *,
    request: BoardRequest,
    candidates: Sequence[BoardCandidate],
    weights: BoardWeights | None = None,
    max_alternatives: int = 3,
) -> BoardDecision:
    """Choose a board for ``request`` among ``candidates`` and explain the choice."""
    boards = _Boards(request, (weights or BoardWeights()).normalised())
    return BoardDecision(*boards.decide(candidates, max_alternatives))
