"""What the selectors share, so that each says only how it filters and scores its own kind.

- ``ScoreWeights``: checks and normalises a weights dataclass; ``scored`` builds a rounded score.
- Building blocks of reasons, rejections and explanations: labels, decommissioning, a pinned
  request, the request as recorded.
- ``Allocator``: the flow hosts and boards share. Every candidate is assessed, the eligible
  ones are ranked and the best is chosen; when none is eligible, alternatives are suggested
  and the request is ``unavailable`` (some candidate could take it later) or ``rejected``
  (none could ever). A subclass says how to assess, score, rank and suggest one candidate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import Field, dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from labfleet.errors import Invalid
from labfleet.selection.explanation import (
    CandidateReport,
    Exclusion,
    Explanation,
    Note,
    Outcome,
    Reason,
    Rejection,
    Score,
    ScorePart,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ROUND = 6
"""Scores are rounded so that equal candidates tie exactly, whatever the float noise."""


class ScoreWeights:
    """For a frozen dataclass whose fields are the weights of a score's parts, in the parts' order."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def _values(self) -> list[tuple[str, float]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def __post_init__(self) -> None:
        values = [w for _, w in self._values()]
        if any(w < 0 for w in values) or sum(values) <= 0:
            raise Invalid("weights must be non-negative and not all zero", field="weights")

    def normalised(self) -> dict[str, float]:
        """The weights scaled to sum 1, by name."""
        values = self._values()
        total = 0.0
        for _, w in values:
            total += w
        return {name: w / total for name, w in values}


def scored(weights: Mapping[str, float], *terms: tuple[str, float, str]) -> Score:
    """The score of ``(name, value, detail)`` terms, each value in [0, 1] weighted by ``weights[name]``."""
    parts = tuple(
        [ScorePart(name, round(value, ROUND), weights[name], detail) for name, value, detail in terms]
    )
    # Each part's ``contribution``, in order, without a property call: this runs for every candidate.
    return Score(round(sum([p.value * p.weight for p in parts]), ROUND), parts)


class Candidate(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...


def check_unique(candidates: Iterable[Candidate], kind: str) -> None:
    seen: set[int] = set()
    for c in candidates:
        if c.id in seen:
            raise Invalid(f"{kind} {c.id} is a candidate twice", field="candidates")
        seen.add(c.id)


DECOMMISSIONED = Reason(Exclusion.decommissioned, "decommissioned: out of the pool")


def missing_labels(wanted: Mapping[str, str], have: Mapping[str, str]) -> Reason | None:
    """The reason a candidate with labels ``have`` fails a request for ``wanted``; ``None`` if it does not."""
    missing = [f"{k}={v}" for k, v in wanted.items() if have.get(k) != v]
    return Reason(Exclusion.labels, f"lacks label {', '.join(sorted(missing))}") if missing else None


def describe_labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def pinned_rejection(
    kind: str, pinned: int, candidates: Iterable[tuple[int, str, Sequence[Reason]]]
) -> Rejection:
    """Why a request pinned to one candidate can never be placed: there is no such candidate, or
    the first of its lasting ``(id, name, reasons)``."""
    for id_, name, reasons in candidates:
        if id_ == pinned:
            first = reasons[0]
            return Rejection(first.code, f"{kind} {name} cannot take it: {first.message}")
    return Rejection(Exclusion.not_pinned, f"no {kind} with id {pinned}")


def describe_request(request: DataclassInstance) -> dict[str, Any]:
    """A request as its explanation records it: every field in order, as a JSON value."""
    described: dict[str, Any] = {}
    for f in fields(request):
        value = getattr(request, f.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, frozenset | set):
            value = sorted(value)
        described[f.name] = value
    return described


def explainer(
    request: dict[str, Any], weights: dict[str, float], reports: tuple[CandidateReport, ...]
) -> Callable[[Outcome, str, int | None], Explanation]:
    """Explanations of one decision, which differ only in outcome, summary and choice."""

    def explain(outcome: Outcome, summary: str, chosen_id: int | None = None) -> Explanation:
        return Explanation(outcome, summary, request, weights, reports, chosen_id)

    return explain


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True, slots=True)
class Assessment(Generic[C]):
    """What stands between a candidate and the request."""

    candidate: C
    permanent: tuple[Reason, ...]
    """Reasons that will not pass on their own: they make a request unplaceable (422)."""
    transient: tuple[Reason, ...]
    """Reasons that pass on their own (a reservation ends) or when an operator acts."""

    @property
    def eligible(self) -> bool:
        return not self.permanent and not self.transient


A = TypeVar("A", bound=Assessment[Any])


def meeting(pool: list[A], code: Exclusion) -> list[A]:
    """The candidates of ``pool`` that meet the requirement ``code`` stands for."""
    return [a for a in pool if not any(r.code is code for r in a.permanent)]


@dataclass(frozen=True, slots=True)
class Alternative:
    """A candidate to suggest when the request cannot be placed as asked (R11.4)."""

    id: int
    name: str
    available_now: bool
    lacks: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "available_now": self.available_now,
            "lacks": [r.as_dict() for r in self.lacks],
        }


Alt = TypeVar("Alt", bound=Alternative)


@dataclass(frozen=True, slots=True)
class Allocation(Generic[C, Alt]):
    """The choice: a candidate (or none), why, and what else to try when none can take it."""

    chosen: C | None
    explanation: Explanation
    alternatives: tuple[Alt, ...] = ()
    rejected: Rejection | None = None

    @property
    def outcome(self) -> Outcome:
        return self.explanation.outcome

    def _extra(self) -> dict[str, Any]:
        """Entries a kind of decision adds to ``as_dict()`` after ``rejected``."""
        return {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen_id": self.chosen.id if self.chosen is not None else None,
            "rejected": self.rejected.as_dict() if self.rejected is not None else None,
            **self._extra(),
            "alternatives": [a.as_dict() for a in self.alternatives],
            "explanation": self.explanation.as_dict(),
        }


class Allocator(ABC, Generic[C, A, Alt]):
    """Choose one of ``candidates`` for a request, or say what else to try (hosts, boards).

    A pinned request excludes every other candidate. Eligible candidates are ranked by
    ``rank_key`` (the best first) and the first is chosen. Otherwise alternatives are, best
    first: for a pinned request, the other candidates eligible now; then those that could take
    it once what they lack passes, nearest first (``nearness``).
    """

    kind: ClassVar[str]
    """What a candidate is, in messages: ``host``, ``board``."""
    not_now: ClassVar[str]
    """Said of a pinned candidate that cannot take the request now."""
    some_not_now: ClassVar[str]
    """Said of candidates that could take the request, none now."""

    def __init__(self, pinned: int | None, weights: dict[str, float], request: DataclassInstance) -> None:
        self.pinned = pinned
        self.weights = weights
        self.request_dict = describe_request(request)

    @abstractmethod
    def assess(self, c: C) -> A: ...

    @abstractmethod
    def score(self, a: A) -> Score: ...

    @abstractmethod
    def rank_key(self, a: A, score: Score) -> tuple[Any, ...]:
        """Ascending: the best first; ties must end on the candidate's id, so the order is total."""

    @abstractmethod
    def notes(self, a: A) -> tuple[Note, ...]:
        """The notes of an eligible candidate."""

    def excluded_notes(self, a: A) -> tuple[Note, ...]:
        return ()

    @abstractmethod
    def chosen_summary(self, a: A, score: Score) -> str: ...

    @abstractmethod
    def nearness(self, a: A) -> tuple[Any, ...]:
        """Ascending: the candidate whose transient reasons pass soonest first."""

    @abstractmethod
    def alternative(self, a: A) -> Alt: ...

    @abstractmethod
    def unmatched(self, assessments: Sequence[A]) -> Rejection:
        """The first requirement no candidate in the pool meets, in the order a person would check them."""

    def decide(
        self, candidates: Sequence[C], limit: int
    ) -> tuple[C | None, Explanation, tuple[Alt, ...], Rejection | None]:
        """The fields of the decision: the chosen candidate, explanation, alternatives and rejection."""
        check_unique(candidates, self.kind)
        assess = self.assess  # bound once: it runs for every candidate, and there may be thousands
        assessments = [assess(c) for c in candidates]
        pinned = self.pinned
        ranked, excluded = self._partition(assessments)
        reports = tuple(
            [
                CandidateReport(
                    a.candidate.id,
                    a.candidate.name,
                    (),
                    self.notes(a),
                    score=score,
                    rank=i + 1,
                    can_start_now=True,
                )
                for i, (_, a, score) in enumerate(ranked)
            ]
            + excluded
        )
        explain = explainer(self.request_dict, self.weights, reports)

        if ranked:
            _, best, score = ranked[0]
            c = best.candidate
            return c, explain(Outcome.assigned, self.chosen_summary(best, score), c.id), (), None

        alternatives = self._alternatives(assessments, limit)
        in_play = [a for a in assessments if pinned is None or a.candidate.id == pinned]
        if any(not a.permanent for a in in_play):
            if pinned is not None:
                target = in_play[0]
                summary = f"{self.kind} {target.candidate.name} {self.not_now}: {target.transient[0].message}"
            else:
                waiting = sum(1 for a in in_play if not a.permanent)
                summary = f"{waiting} {self.kind}(s) {self.some_not_now}"
            return None, explain(Outcome.unavailable, summary, None), alternatives, None
        rejection = self._rejection(assessments)
        return None, explain(Outcome.rejected, rejection.message, None), alternatives, rejection

    def _partition(
        self, assessments: Sequence[A]
    ) -> tuple[list[tuple[tuple[Any, ...], A, Score]], list[CandidateReport]]:
        """The eligible, scored and sorted by their rank key; the reports of the others."""
        # Bound once: these run for every candidate, and there may be thousands.
        excluded_notes, score_of, rank_key = self.excluded_notes, self.score, self.rank_key
        pinned = self.pinned
        ranked: list[tuple[tuple[Any, ...], A, Score]] = []
        excluded: list[CandidateReport] = []
        not_pinned = Reason(Exclusion.not_pinned, f"the request is pinned to {self.kind} {pinned}")
        for a in assessments:
            c = a.candidate
            if pinned is not None and c.id != pinned:
                excluded.append(CandidateReport(c.id, c.name, (not_pinned,), ()))
            elif not a.eligible:
                excluded.append(CandidateReport(c.id, c.name, a.permanent + a.transient, excluded_notes(a)))
            else:
                score = score_of(a)
                ranked.append((rank_key(a, score), a, score))
        ranked.sort(key=lambda item: item[0])
        return ranked, excluded

    def _alternatives(self, assessments: Sequence[A], limit: int) -> tuple[Alt, ...]:
        others = [a for a in assessments if a.candidate.id != self.pinned]
        now = sorted((a for a in others if a.eligible), key=lambda a: self.rank_key(a, self.score(a)))
        later = sorted((a for a in others if not a.permanent and a.transient), key=self.nearness)
        return tuple(self.alternative(a) for a in [*now, *later][:limit])

    def _rejection(self, assessments: Sequence[A]) -> Rejection:
        if self.pinned is None:
            return self.unmatched(assessments)
        found = ((a.candidate.id, a.candidate.name, a.permanent) for a in assessments)
        return pinned_rejection(self.kind, self.pinned, found)
