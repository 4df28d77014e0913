"""Choosing a build server for a build (R3.2, R3.3, R2.4, R2.5, R12.1, R13.1, R13.4, R13.5).

Filter, then score:

1. A candidate is excluded if it is decommissioned, has no toolchain for the architecture,
   lacks a required label, is in maintenance or offline, or has less free disk than the
   critical threshold (strictly below it). A pinned request excludes every other server.
2. Each remaining candidate gets a score in [0, 1], higher is better, the weighted mean of:

   - ``load``: ``1 - min(load_1m / cpu_cores / max_load_per_core, 1)``; 0.5 when unknown, so a
     server that has not reported yet is neither favoured nor shunned;
   - ``slots``: free slots / ``max_concurrent_builds``;
   - ``queue``: ``1 / (1 + queued_builds)``;
   - ``duration``: fastest estimate among the eligible / this server's estimate (1 = fastest).

   Weights are ``Weights`` (default 0.35, 0.25, 0.2, 0.2) and are normalised to sum 1.
3. Servers that can start the build now (a free slot not already promised to a queued build,
   load under the limit) rank before busy ones; within each group by score, then fewer active
   builds, then lower id. So equal servers share work (R13.4) and the result is deterministic.

If no eligible server can start now, the build queues on the best busy one (R3.3). If
servers support the request but none is eligible now, it waits unassigned. If none could
ever take it (no toolchain, or no such labels, among servers still in the pool), it is
rejected, so the API can answer 422 at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection.common import (
    DECOMMISSIONED,
    ScoreWeights,
    check_unique,
    describe_labels,
    describe_request,
    explainer,
    missing_labels,
    pinned_rejection,
    scored,
)
from labfleet.selection.estimates import Estimate, EstimateModel
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
)


@dataclass(frozen=True, slots=True)
class BuildServerCandidate:
    """A build server as selection sees it: a snapshot the service reads from the database."""

    id: int
    name: str
    status: ServerStatus
    architectures: frozenset[Architecture]
    """Architectures it has an enabled toolchain for."""
    max_concurrent_builds: int
    active_builds: int = 0
    queued_builds: int = 0
    """Builds already assigned to it and waiting for a slot."""
    load_1m: float | None = None
    cpu_cores: int | None = None
    disk_free_gb: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def free_slots(self) -> int:
        return max(self.max_concurrent_builds - self.active_builds, 0)

    @property
    def load_per_core(self) -> float | None:
        if self.load_1m is None or not self.cpu_cores or self.cpu_cores < 1:
            return None
        return max(self.load_1m, 0.0) / self.cpu_cores


@dataclass(frozen=True, slots=True)
class BuildRequest:
    architecture: Architecture
    server_id: int | None = None
    """A pinned server; ``None`` is ``auto``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels the server must carry, each with this value."""
    repository: str | None = None
    duration_hint_s: float | None = None


@dataclass(frozen=True, slots=True)
class Thresholds:
    disk_warning_gb: float = 50.0
    disk_critical_gb: float = 10.0
    max_load_per_core: float = 1.5
    """Above this a server is saturated: it takes no new build now, though one may queue on it."""

    def __post_init__(self) -> None:
        if self.disk_critical_gb > self.disk_warning_gb:
            raise Invalid("the critical disk threshold exceeds the warning one", field="disk_critical_gb")
        if self.max_load_per_core <= 0:
            raise Invalid("max_load_per_core must be positive", field="max_load_per_core")


@dataclass(frozen=True, slots=True)
class Weights(ScoreWeights):
    load: float = 0.35
    slots: float = 0.25
    queue: float = 0.2
    duration: float = 0.2


@dataclass(frozen=True, slots=True)
class Decision:
    """The choice: a server (or none), whether the build must wait for it, and why."""

    chosen: BuildServerCandidate | None
    must_wait: bool
    explanation: Explanation
    rejected: Rejection | None = None

    @property
    def outcome(self) -> Outcome:
        return self.explanation.outcome

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen_id": self.chosen.id if self.chosen is not None else None,
            "must_wait": self.must_wait,
            "rejected": self.rejected.as_dict() if self.rejected is not None else None,
            "explanation": self.explanation.as_dict(),
        }


def _permanent_reasons(c: BuildServerCandidate, request: BuildRequest) -> list[Reason]:
    """Reasons that will not pass on their own: they make a request unplaceable (422)."""
    reasons: list[Reason] = []
    arch = request.architecture.value
    if c.status is ServerStatus.decommissioned:
        reasons.append(DECOMMISSIONED)
    if request.architecture not in c.architectures:
        reasons.append(Reason(Exclusion.no_toolchain, f"no toolchain for {arch}"))
    if request.labels and (lacking := missing_labels(request.labels, c.labels)) is not None:
        reasons.append(lacking)
    return reasons


def _transient_reasons(c: BuildServerCandidate, thresholds: Thresholds) -> list[Reason]:
    """Reasons that pass when the server comes back, leaves maintenance or frees disk."""
    reasons: list[Reason] = []
    if c.status is ServerStatus.maintenance:
        reasons.append(Reason(Exclusion.maintenance, "in maintenance: running builds finish, no new ones"))
    elif c.status is ServerStatus.offline:
        reasons.append(Reason(Exclusion.offline, "offline"))
    if c.disk_free_gb is not None and c.disk_free_gb < thresholds.disk_critical_gb:
        reasons.append(
            Reason(
                Exclusion.disk_critical,
                f"{c.disk_free_gb:.1f} GB free, below the critical {thresholds.disk_critical_gb:g} GB",
            )
        )
    return reasons


def _notes(
    c: BuildServerCandidate, thresholds: Thresholds, *, saturated: bool, busy: bool
) -> tuple[Note, ...]:
    notes: list[Note] = []
    if c.status is ServerStatus.degraded:
        notes.append(Note(NoteCode.degraded, "degraded"))
    if c.disk_free_gb is None:
        notes.append(Note(NoteCode.disk_unknown, "free disk not reported yet"))
    elif c.disk_free_gb < thresholds.disk_warning_gb:
        notes.append(
            Note(
                NoteCode.disk_warning,
                f"{c.disk_free_gb:.1f} GB free, below the warning {thresholds.disk_warning_gb:g} GB",
            )
        )
    if c.load_per_core is None:
        notes.append(Note(NoteCode.load_unknown, "load not reported yet"))
    elif saturated:
        notes.append(
            Note(
                NoteCode.overloaded,
                f"load {c.load_per_core:.2f} per core, above {thresholds.max_load_per_core:g}",
            )
        )
    if busy and not saturated:
        notes.append(
            Note(
                NoteCode.no_free_slot,
                f"{c.active_builds}/{c.max_concurrent_builds} slots busy, {c.queued_builds} queued",
            )
        )
    return tuple(notes)


def _score(
    c: BuildServerCandidate,
    estimate: Estimate,
    fastest_s: float,
    thresholds: Thresholds,
    weights: Mapping[str, float],
) -> Score:
    lpc = c.load_per_core
    if lpc is None:
        load, load_detail = 0.5, "unknown load, neutral"
    else:
        load = 1.0 - min(lpc / thresholds.max_load_per_core, 1.0)
        load_detail = f"{lpc:.2f} load per core"
    capacity = max(c.max_concurrent_builds, 1)
    slots = c.free_slots / capacity
    queued = max(c.queued_builds, 0)
    queue = 1.0 / (1 + queued)
    duration = fastest_s / estimate.seconds
    return scored(
        weights,
        ("load", load, load_detail),
        ("slots", slots, f"{c.free_slots}/{capacity} free"),
        ("queue", queue, f"{queued} queued"),
        ("duration", duration, estimate.describe()),
    )


def _rejection(request: BuildRequest, reports: Sequence[CandidateReport]) -> Rejection:
    arch = request.architecture.value
    if request.server_id is not None:
        found = ((r.id, r.name, r.reasons) for r in reports)
        return pinned_rejection("build server", request.server_id, found)
    codes = {r.code for report in reports for r in report.reasons}
    toolchain = [r for r in reports if not any(x.code is Exclusion.no_toolchain for x in r.reasons)]
    in_pool = [r for r in toolchain if not any(x.code is Exclusion.decommissioned for x in r.reasons)]
    if not in_pool:
        suffix = " in the pool" if toolchain else ""
        return Rejection(Exclusion.no_toolchain, f"no server{suffix} has a toolchain for {arch}")
    code = Exclusion.labels if Exclusion.labels in codes else Exclusion.no_toolchain
    wanted = describe_labels(request.labels)
    return Rejection(code, f"no server with a toolchain for {arch} has the labels {wanted}")


_Ranked = tuple[tuple[bool, float, int, int], CandidateReport, BuildServerCandidate]
"""A ranked server: its sort key, its report and the candidate."""


def select_build_server(
    *,
    request: BuildRequest,
    candidates: Sequence[BuildServerCandidate],
    thresholds: Thresholds | None = None,
    history: EstimateModel | None = None,
    weights: Weights | None = None,
) -> Decision:
    """Choose a build server for ``request`` among ``candidates`` and explain the choice."""
    thresholds = thresholds or Thresholds()
    history = history or EstimateModel()
    normalised = (weights or Weights()).normalised()
    check_unique(candidates, "build server")
    excluded, eligible, placeable = _sort_out(request, candidates, thresholds, history)
    ranked = _rank(eligible, thresholds, normalised)
    reports = _numbered(ranked, excluded)
    explain = explainer(describe_request(request), normalised, reports)

    if ranked:
        _, best_report, best = ranked[0]
        total = best_report.score.total if best_report.score is not None else 0.0
        if best_report.can_start_now:
            summary = f"{best.name} chosen: score {total:.3f}, {best.free_slots} free slot(s)"
            return Decision(best, False, explain(Outcome.assigned, summary, best.id))
        summary = f"every eligible server is busy; queued on {best.name} (score {total:.3f})"
        return Decision(best, True, explain(Outcome.queued, summary, best.id))
    if placeable:
        summary = "servers support the request but none can take builds now; it waits"
        return Decision(None, True, explain(Outcome.waiting, summary, None))
    rejection = _rejection(request, reports)
    return Decision(None, False, explain(Outcome.rejected, rejection.message, None), rejection)


def _sort_out(
    request: BuildRequest,
    candidates: Sequence[BuildServerCandidate],
    thresholds: Thresholds,
    history: EstimateModel,
) -> tuple[list[CandidateReport], list[tuple[BuildServerCandidate, Estimate]], bool]:
    """The excluded (with their reasons), the eligible with their duration estimates, and whether
    some candidate could take the request once its transient reasons pass."""
    excluded: list[CandidateReport] = []
    eligible: list[tuple[BuildServerCandidate, Estimate]] = []
    placeable = False
    for c in candidates:
        if request.server_id is not None and c.id != request.server_id:
            reason = Reason(Exclusion.not_pinned, f"the request is pinned to server {request.server_id}")
            excluded.append(CandidateReport(c.id, c.name, (reason,), ()))
            continue
        permanent = _permanent_reasons(c, request)
        reasons = permanent + _transient_reasons(c, thresholds)
        placeable = placeable or not permanent
        if reasons:
            notes = _notes(c, thresholds, saturated=False, busy=False)
            excluded.append(CandidateReport(c.id, c.name, tuple(reasons), notes))
            continue
        estimate = history.estimate(
            server_id=c.id,
            architecture=request.architecture,
            repository=request.repository,
            hint_s=request.duration_hint_s,
        )
        eligible.append((c, estimate))
    return excluded, eligible, placeable


def _rank(
    eligible: Sequence[tuple[BuildServerCandidate, Estimate]],
    thresholds: Thresholds,
    weights: Mapping[str, float],
) -> list[_Ranked]:
    """The eligible, scored and sorted: those that can start now first, then by score."""
    ranked: list[_Ranked] = []
    if not eligible:
        return ranked
    fastest = min(e.seconds for _, e in eligible)
    for c, estimate in eligible:
        lpc = c.load_per_core
        saturated = lpc is not None and lpc > thresholds.max_load_per_core
        # A free slot already promised to a queued build is not free for this one.
        busy = saturated or c.free_slots <= max(c.queued_builds, 0)
        score = _score(c, estimate, fastest, thresholds, weights)
        report = CandidateReport(
            c.id,
            c.name,
            (),
            _notes(c, thresholds, saturated=saturated, busy=busy),
            score=score,
            can_start_now=not busy,
            estimated_duration_s=round(estimate.seconds, 3),
        )
        ranked.append(((busy, -score.total, c.active_builds, c.id), report, c))
    ranked.sort(key=lambda item: item[0])
    return ranked


def _numbered(ranked: Sequence[_Ranked], excluded: Sequence[CandidateReport]) -> tuple[CandidateReport, ...]:
    """Every report, the ranked ones first with their rank."""
    return tuple(
        [
            CandidateReport(
                r.id,
                r.name,
                r.reasons,
                r.notes,
                score=r.score,
                rank=i + 1,
                can_start_now=r.can_start_now,
                estimated_duration_s=r.estimated_duration_s,
            )
            for i, (_, r, _) in enumerate(ranked)
        ]
        + list(excluded)
    )
