"""Duration estimates from build history, and estimated start times of queued jobs (R3.2, R3.5).

Pure arithmetic: the service reads past durations from the database and hands them in as
``DurationSample`` values; nothing here knows where they came from.
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture

DEFAULT_DURATION_S = 1800.0
"""A build with no history anywhere is assumed to take half an hour: the order of a kernel build."""


@dataclass(frozen=True, slots=True)
class DurationSample:
    """One finished build: how long it ran on which server, for which architecture (and repository)."""

    server_id: int
    architecture: Architecture
    seconds: float
    repository: str | None = None


class EstimateSource(StrEnum):
    """Where an estimate came from, most specific first; shown in the explanation."""

    repository_history = "repository_history"
    server_history = "server_history"
    request_hint = "request_hint"
    architecture_history = "architecture_history"
    default = "default"


@dataclass(frozen=True, slots=True)
class Estimate:
    seconds: float
    source: EstimateSource
    samples: int

    def describe(self) -> str:
        """Human text for the explanation."""
        minutes = self.seconds / 60
        match self.source:
            case EstimateSource.repository_history:
                return f"~{minutes:.0f} min, median of the last {self.samples} builds of this repo here"
            case EstimateSource.server_history:
                return f"~{minutes:.0f} min, median of the last {self.samples} builds of this arch here"
            case EstimateSource.request_hint:
                return f"~{minutes:.0f} min, as hinted by the request"
            case EstimateSource.architecture_history:
                return f"~{minutes:.0f} min, median of {self.samples} builds of this arch on any server"
            case _:
                return f"~{minutes:.0f} min, the default (no history)"


def _median_of_last(values: list[float], last_n: int) -> tuple[float, int]:
    tail = values[-last_n:]
    return statistics.median(tail), len(tail)


@dataclass(frozen=True, slots=True)
class EstimateModel:
    """Median of the last N durations per (server, architecture[, repository]), computed once.

    Medians rather than means: one build that hung until its timeout must not make a server
    look slow for weeks.
    """

    by_repository: Mapping[tuple[int, Architecture, str], tuple[float, int]] = field(default_factory=dict)
    by_server: Mapping[tuple[int, Architecture], tuple[float, int]] = field(default_factory=dict)
    by_architecture: Mapping[Architecture, tuple[float, int]] = field(default_factory=dict)
    default_s: float = DEFAULT_DURATION_S

    @classmethod
    def from_samples(
        cls, samples: Iterable[DurationSample], *, last_n: int = 10, default_s: float = DEFAULT_DURATION_S
    ) -> EstimateModel:
        """Build the model from samples in chronological order (oldest first)."""
        if last_n < 1:
            raise Invalid("last_n must be at least 1", field="last_n")
        if default_s <= 0:
            raise Invalid("default_s must be positive", field="default_s")
        repo: dict[tuple[int, Architecture, str], list[float]] = {}
        server: dict[tuple[int, Architecture], list[float]] = {}
        arch: dict[Architecture, list[float]] = {}
        for s in samples:
            # A zero or negative duration is a clock glitch, not a fast build; it would skew medians.
            if s.seconds <= 0:
                continue
            if s.repository is not None:
                repo.setdefault((s.server_id, s.architecture, s.repository), []).append(s.seconds)
            server.setdefault((s.server_id, s.architecture), []).append(s.seconds)
            arch.setdefault(s.architecture, []).append(s.seconds)
        return cls(
            by_repository={k: _median_of_last(v, last_n) for k, v in repo.items()},
            by_server={k: _median_of_last(v, last_n) for k, v in server.items()},
            by_architecture={k: _median_of_last(v, last_n) for k, v in arch.items()},
            default_s=default_s,
        )

    def estimate(
        self,
        *,
        server_id: int,
        architecture: Architecture,
        repository: str | None = None,
        hint_s: float | None = None,
    ) -> Estimate:
        """The most specific estimate available; measured history beats the submitter's hint."""
        if repository is not None:
            found = self.by_repository.get((server_id, architecture, repository))
            if found is not None:
                return Estimate(found[0], EstimateSource.repository_history, found[1])
        found = self.by_server.get((server_id, architecture))
        if found is not None:
            return Estimate(found[0], EstimateSource.server_history, found[1])
        if hint_s is not None and hint_s > 0:
            return Estimate(hint_s, EstimateSource.request_hint, 0)
        found = self.by_architecture.get(architecture)
        if found is not None:
            return Estimate(found[0], EstimateSource.architecture_history, found[1])
        return Estimate(self.default_s, EstimateSource.default, 0)


def estimated_start(
    *,
    position: int,
    running_remaining_s: Sequence[float],
    slots: int,
    ahead_durations_s: Sequence[float] = (),
    default_duration_s: float = DEFAULT_DURATION_S,
) -> float:
    """Seconds from now until the job at ``position`` (0 = next in line) of one server's queue starts.

    The simulation: each running job frees its slot after its expected remaining time;
    queued jobs start first come, first served, each in the earliest slot to free up, and
    occupy it for their own duration (``ahead_durations_s[i]`` for the i-th job ahead,
    ``default_duration_s`` where none is given). Running jobs beyond ``slots`` (the limit was
    lowered while they ran) still hold their slots until they finish.
    """
    if position < 0:
        raise Invalid("position must not be negative", field="position")
    if slots < 1:
        raise Invalid("a server needs at least one build slot", field="slots")
    if default_duration_s < 0 or any(d < 0 for d in ahead_durations_s):
        raise Invalid("durations must not be negative", field="ahead_durations_s")
    # An overrunning job (remaining < 0) is expected to end any moment, not in the past.
    busy_until = [max(r, 0.0) for r in running_remaining_s]
    heapq.heapify(busy_until)
    now = 0.0
    for i in range(position + 1):
        # Jobs start in queue order, so a job never starts before the one ahead of it.
        while len(busy_until) >= slots:
            now = max(now, heapq.heappop(busy_until))
        if i < position:
            duration = ahead_durations_s[i] if i < len(ahead_durations_s) else default_duration_s
            heapq.heappush(busy_until, now + duration)
    return now
