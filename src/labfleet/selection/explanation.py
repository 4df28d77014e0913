"""What a selection decided and why (R13.5): every candidate once, excluded with reasons or scored.

All of it serialises to JSON through ``as_dict()``: the explanation is stored with the job
and returned by the API as it was when the choice was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Exclusion(StrEnum):
    """Why a candidate cannot take the request."""

    not_pinned = "not_pinned"
    decommissioned = "decommissioned"
    no_toolchain = "no_toolchain"
    labels = "labels"
    maintenance = "maintenance"
    offline = "offline"
    disk_critical = "disk_critical"
    # Hosts and boards (R11.3, R13.2, R13.3).
    architecture = "architecture"
    no_kvm = "no_kvm"
    too_small = "too_small"
    capacity_unknown = "capacity_unknown"
    insufficient_cpu = "insufficient_cpu"
    insufficient_memory = "insufficient_memory"
    insufficient_disk = "insufficient_disk"
    over_threshold = "over_threshold"
    board_type = "board_type"
    peripherals = "peripherals"
    flashing = "flashing"
    failed = "failed"
    unreachable = "unreachable"
    reserved = "reserved"


class NoteCode(StrEnum):
    """Something worth knowing about a candidate that does not exclude it."""

    degraded = "degraded"
    disk_warning = "disk_warning"
    disk_unknown = "disk_unknown"
    load_unknown = "load_unknown"
    overloaded = "overloaded"
    no_free_slot = "no_free_slot"
    # Hosts and boards (R11.4).
    capacity_warning = "capacity_warning"
    near_threshold = "near_threshold"
    utilization_unknown = "utilization_unknown"
    emulated = "emulated"
    no_kvm = "no_kvm"
    health_unknown = "health_unknown"
    recent_failures = "recent_failures"


class Outcome(StrEnum):
    assigned = "assigned"
    """A server was chosen and has a free slot: the build can start now."""
    queued = "queued"
    """Every eligible server is busy: the build queues on the best one (R3.3)."""
    waiting = "waiting"
    """Servers support the request but none can take builds now (offline, maintenance, disk)."""
    rejected = "rejected"
    """No server could ever take the request: answer at once (R3.3)."""
    unavailable = "unavailable"
    """Hosts or boards match the request but none can take it now; alternatives are suggested (R11.4)."""


@dataclass(frozen=True, slots=True)
class Reason:
    """An exclusion: a stable code for programs and a sentence for people."""

    code: Exclusion
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True, slots=True)
class Note:
    code: NoteCode
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True, slots=True)
class ScorePart:
    """One term of a score: ``value`` in [0, 1] (1 is best), times ``weight`` (normalised)."""

    name: str
    value: float
    weight: float
    detail: str

    @property
    def contribution(self) -> float:
        return self.value * self.weight

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "weight": self.weight,
            "contribution": round(self.contribution, 6),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Score:
    total: float
    parts: tuple[ScorePart, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "parts": [p.as_dict() for p in self.parts]}


@dataclass(frozen=True, slots=True)
class CandidateReport:
    """One candidate's fate: excluded (``reasons`` not empty) or eligible with a score and a rank."""

    id: int
    name: str
    reasons: tuple[Reason, ...]
    notes: tuple[Note, ...]
    score: Score | None = None
    rank: int | None = None
    can_start_now: bool = False
    estimated_duration_s: float | None = None

    @property
    def excluded(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "excluded": self.excluded,
            "reasons": [r.as_dict() for r in self.reasons],
            "notes": [n.as_dict() for n in self.notes],
            "score": self.score.as_dict() if self.score is not None else None,
            "rank": self.rank,
            "can_start_now": self.can_start_now,
            "estimated_duration_s": self.estimated_duration_s,
        }


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why no server could ever take the request; the service answers 422 with ``message``."""

    code: Exclusion
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True, slots=True)
class Explanation:
    """The whole decision, for people and for the record: eligible candidates first, best first."""

    outcome: Outcome
    summary: str
    request: dict[str, Any]
    weights: dict[str, float]
    candidates: tuple[CandidateReport, ...]
    chosen_id: int | None = None

    def report(self, candidate_id: int) -> CandidateReport:
        """The report of one candidate (``KeyError`` if it was not a candidate)."""
        for r in self.candidates:
            if r.id == candidate_id:
                return r
        raise KeyError(candidate_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "summary": self.summary,
            "chosen_id": self.chosen_id,
            "request": self.request,
            "weights": self.weights,
            "candidates": [c.as_dict() for c in self.candidates],
        }
