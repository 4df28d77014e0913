"""The order of a pipeline's stages, as pure rules over their statuses (R17.2, R17.4; property 7).

build -> deploy -> boot -> test. A stage starts only when every stage before it succeeded;
a failed or cancelled stage stops the pipeline and every later stage is ``skipped``; a retry
of a failed (or cancelled) stage makes it and the later ones ``pending`` again and keeps the
earlier stages' results. The worker and the API apply these, and nothing else moves stages.
"""

from __future__ import annotations

from collections.abc import Sequence

from labfleet.db.models.pipelines import CANCELLED, FAILED, PENDING, QUEUED, RUNNING, SKIPPED, SUCCEEDED
from labfleet.errors import Conflict, Invalid
from labfleet.schemas.pipelines import STAGES

STOPPED = (FAILED, CANCELLED)


def next_to_run(statuses: Sequence[str]) -> int | None:
    """The stage to start now: the first pending one, if every stage before it succeeded."""
    for index, status in enumerate(statuses):
        if status == SUCCEEDED:
            continue
        return index if status == PENDING else None
    return None


def start(statuses: Sequence[str], index: int) -> list[str]:
    if next_to_run(statuses) != index:
        raise Conflict(f"stage {STAGES[index]} cannot start: the stages before it have not all succeeded")
    out = list(statuses)
    out[index] = RUNNING
    return out


def finish(statuses: Sequence[str], index: int, outcome: str) -> list[str]:
    """The running stage ``index`` ended with ``outcome``; a failure or cancel skips the rest."""
    if outcome not in (SUCCEEDED, FAILED, CANCELLED):
        raise ValueError(f"not an outcome: {outcome}")
    if statuses[index] != RUNNING:
        raise Conflict(f"stage {STAGES[index]} is {statuses[index]}, not running")
    out = list(statuses)
    out[index] = outcome
    if outcome in STOPPED:
        out[index + 1 :] = [SKIPPED] * (len(out) - index - 1)
    return out


def cancel(statuses: Sequence[str]) -> list[str]:
    """Cancel at any point: a running stage is cancelled, what has not run is skipped."""
    out = list(statuses)
    for index, status in enumerate(out):
        if status == RUNNING:
            out[index] = CANCELLED
        elif status == PENDING:
            out[index] = SKIPPED
    return out


def retry_from(statuses: Sequence[str], stage: str) -> tuple[int, list[str]]:
    """Run again from ``stage``, which must be the one that stopped the pipeline."""
    if stage not in STAGES:
        raise Invalid(f"no stage {stage!r}; the stages are {', '.join(STAGES)}", field="stage")
    index = STAGES.index(stage)
    if statuses[index] not in STOPPED:
        raise Conflict(
            f"stage {stage} is {statuses[index]}: only a failed or cancelled stage is retried", field="stage"
        )
    if any(s != SUCCEEDED for s in statuses[:index]):
        raise Conflict(f"stage {stage} cannot be retried: a stage before it did not succeed", field="stage")
    out = list(statuses)
    out[index:] = [PENDING] * (len(out) - index)
    return index, out


def overall(statuses: Sequence[str], *, claimed: bool) -> str:
    """The pipeline's status from its stages'."""
    if all(s == SUCCEEDED for s in statuses):
        return SUCCEEDED
    if FAILED in statuses:
        return FAILED
    if CANCELLED in statuses or SKIPPED in statuses:
        return CANCELLED  # skipped with nothing failed: cancelled before it ran
    return RUNNING if claimed or RUNNING in statuses else QUEUED
