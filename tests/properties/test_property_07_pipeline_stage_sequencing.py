"""Property 7: pipeline stage sequencing.

For any sequence of stage operations on a pipeline's four stages (build, deploy, boot,
test) — start the next stage, finish the running one as succeeded, failed or cancelled,
cancel the pipeline, retry a stage, try to start any stage — at most one stage runs; a
stage runs or succeeds only after every earlier stage succeeded; a failure or cancel skips
every later stage and nothing more can start; a retry of the stopped stage makes it and the
later ones pending and keeps the earlier results; an operation that is not allowed is
refused and changes nothing; and the pipeline's overall status follows its stages'.

Validates: 17.2, 17.4
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from labfleet.db.models.pipelines import CANCELLED, FAILED, PENDING, QUEUED, RUNNING, SKIPPED, SUCCEEDED
from labfleet.errors import Conflict, Invalid
from labfleet.schemas.pipelines import STAGES
from labfleet.services.pipelines import stages as pipeline_stages
from labfleet.services.pipelines.stages import cancel, finish, next_to_run, overall, retry_from, start

N = len(STAGES)
FRESH = [PENDING] * N
OUTCOMES = (SUCCEEDED, FAILED, CANCELLED)
ALL_STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED)


def _first_unsucceeded(statuses: Sequence[str]) -> int:
    k = 0
    while k < len(statuses) and statuses[k] == SUCCEEDED:
        k += 1
    return k


def assert_well_sequenced(statuses: Sequence[str]) -> None:
    """The shapes the stages can be in: some succeeded stages, then one of: nothing; a running
    stage and pending ones; pending ones; a failed or cancelled stage and skipped ones; skipped
    ones (cancelled before the next stage started)."""
    assert len(statuses) == N
    assert all(s in ALL_STATUSES for s in statuses)
    assert statuses.count(RUNNING) <= 1
    for i, s in enumerate(statuses):
        if s in (RUNNING, SUCCEEDED):
            assert all(e == SUCCEEDED for e in statuses[:i]), statuses
    k = _first_unsucceeded(statuses)
    if k == N:
        assert next_to_run(statuses) is None
        return
    head, rest = statuses[k], list(statuses[k + 1 :])
    if head in (FAILED, CANCELLED, SKIPPED):
        assert rest == [SKIPPED] * len(rest), statuses
        assert next_to_run(statuses) is None
    elif head == RUNNING:
        assert rest == [PENDING] * len(rest), statuses
        assert next_to_run(statuses) is None
    else:
        assert head == PENDING
        assert rest == [PENDING] * len(rest), statuses
        assert next_to_run(statuses) == k


def expected_overall(statuses: Sequence[str], claimed: bool) -> str:
    k = _first_unsucceeded(statuses)
    if k == N:
        return SUCCEEDED
    head = statuses[k]
    if head == FAILED:
        return FAILED
    if head in (CANCELLED, SKIPPED):
        return CANCELLED
    if head == RUNNING:
        return RUNNING
    return RUNNING if claimed else QUEUED


class PipelineStages(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[str] = list(FRESH)

    def _refused(self, exc: type[Exception], call: Callable[..., Any], *args: Any) -> None:
        before = list(self.statuses)
        with pytest.raises(exc):
            call(self.statuses, *args)
        assert self.statuses == before  # the input is left alone

    def _apply(self, call: Callable[..., Any], *args: Any) -> Any:
        before = list(self.statuses)
        result = call(self.statuses, *args)
        assert self.statuses == before  # pure: a new list, the input untouched
        return result

    @property
    def running(self) -> int | None:
        return self.statuses.index(RUNNING) if RUNNING in self.statuses else None

    @rule()
    def start_next(self) -> None:
        index = next_to_run(self.statuses)
        if index is None:
            for i in range(N):
                self._refused(Conflict, start, i)
            return
        out = self._apply(start, index)
        assert out[index] == RUNNING
        assert out[:index] == [SUCCEEDED] * index
        assert out[index + 1 :] == self.statuses[index + 1 :]
        self.statuses = out

    @rule(index=st.integers(0, N - 1))
    def start_any(self, index: int) -> None:
        if index != next_to_run(self.statuses):
            self._refused(Conflict, start, index)
            return
        self.statuses = self._apply(start, index)

    @rule(outcome=st.sampled_from(OUTCOMES))
    def finish_running(self, outcome: str) -> None:
        index = self.running
        if index is None:
            for i in range(N):
                self._refused(Conflict, finish, i, outcome)
            return
        out = self._apply(finish, index, outcome)
        assert out[:index] == self.statuses[:index]
        assert out[index] == outcome
        later = out[index + 1 :]
        if outcome == SUCCEEDED:
            assert later == self.statuses[index + 1 :]
        else:
            assert later == [SKIPPED] * len(later)
            assert next_to_run(out) is None
        self.statuses = out

    @rule(index=st.integers(0, N - 1), outcome=st.sampled_from(OUTCOMES))
    def finish_any(self, index: int, outcome: str) -> None:
        if self.statuses[index] != RUNNING:
            self._refused(Conflict, finish, index, outcome)
        else:
            self.statuses = self._apply(finish, index, outcome)

    @rule(index=st.integers(0, N - 1), outcome=st.sampled_from([PENDING, SKIPPED, RUNNING, "passed"]))
    def finish_with_no_outcome(self, index: int, outcome: str) -> None:
        self._refused(ValueError, finish, index, outcome)

    @rule()
    def cancel_pipeline(self) -> None:
        out = self._apply(cancel)
        for before, after in zip(self.statuses, out, strict=True):
            expected = {RUNNING: CANCELLED, PENDING: SKIPPED}.get(before, before)
            assert after == expected
        assert RUNNING not in out
        assert next_to_run(out) is None
        self.statuses = out

    @rule(stage=st.sampled_from(STAGES))
    def retry(self, stage: str) -> None:
        index = STAGES.index(stage)
        if self.statuses[index] not in (FAILED, CANCELLED):
            self._refused(Conflict, retry_from, stage)
            return
        got, out = self._apply(retry_from, stage)
        assert got == index
        assert out[:index] == self.statuses[:index] == [SUCCEEDED] * index
        assert out[index:] == [PENDING] * (N - index)
        assert next_to_run(out) == index
        self.statuses = out

    @rule(stage=st.sampled_from(["flash", "Build", "", "tests", "build "]))
    def retry_unknown_stage(self, stage: str) -> None:
        before = list(self.statuses)
        with pytest.raises(Invalid) as info:
            retry_from(self.statuses, stage)
        assert info.value.field == "stage"
        assert self.statuses == before

    @precondition(lambda self: any(s in (FAILED, CANCELLED) for s in self.statuses))
    @rule()
    def only_the_stopped_stage_is_retried(self) -> None:
        stopped = next(i for i, s in enumerate(self.statuses) if s in (FAILED, CANCELLED))
        for i, stage in enumerate(STAGES):
            if i != stopped:
                self._refused(Conflict, retry_from, stage)

    @invariant()
    def well_sequenced(self) -> None:
        assert_well_sequenced(self.statuses)

    @invariant()
    def overall_follows_the_stages(self) -> None:
        for claimed in (False, True):
            got = overall(self.statuses, claimed=claimed)
            assert got == expected_overall(self.statuses, claimed)
            assert (got == SUCCEEDED) == all(s == SUCCEEDED for s in self.statuses)
            assert (got == FAILED) == (FAILED in self.statuses)


PipelineStages.TestCase.settings = settings(max_examples=200, stateful_step_count=25, deadline=None)
TestProperty7PipelineStageSequencing = PipelineStages.TestCase


@settings(max_examples=300)
@given(statuses=st.lists(st.sampled_from(ALL_STATUSES), min_size=N, max_size=N))
def test_property_7_next_to_run_is_the_first_pending_stage_after_successes(statuses: list[str]) -> None:
    """On any statuses, well formed or not: a stage is next only if all before it succeeded."""
    index = next_to_run(statuses)
    if index is None:
        k = _first_unsucceeded(statuses)
        assert k == N or statuses[k] != PENDING
    else:
        assert statuses[index] == PENDING
        assert all(s == SUCCEEDED for s in statuses[:index])


# -- examples


def test_a_pipeline_runs_its_stages_in_order_to_success() -> None:
    s = list(FRESH)
    for i, _ in enumerate(STAGES):
        assert next_to_run(s) == i
        s = start(s, i)
        assert overall(s, claimed=True) == RUNNING
        s = finish(s, i, SUCCEEDED)
    assert s == [SUCCEEDED] * N
    assert next_to_run(s) is None
    assert overall(s, claimed=False) == SUCCEEDED


def test_a_failure_skips_the_rest_and_a_retry_resumes_from_it() -> None:
    s = finish(start(FRESH, 0), 0, SUCCEEDED)
    s = finish(start(s, 1), 1, FAILED)
    assert s == [SUCCEEDED, FAILED, SKIPPED, SKIPPED]
    assert overall(s, claimed=True) == FAILED
    with pytest.raises(Conflict):
        start(s, 2)
    with pytest.raises(Conflict):
        retry_from(s, "build")
    with pytest.raises(Conflict):
        retry_from(s, "boot")
    assert retry_from(s, "deploy") == (1, [SUCCEEDED, PENDING, PENDING, PENDING])


def test_cancel_while_running_cancels_that_stage_and_skips_the_rest() -> None:
    s = [SUCCEEDED, SUCCEEDED, RUNNING, PENDING]
    assert cancel(s) == [SUCCEEDED, SUCCEEDED, CANCELLED, SKIPPED]
    assert overall(cancel(s), claimed=True) == CANCELLED
    assert retry_from(cancel(s), "boot") == (2, [SUCCEEDED, SUCCEEDED, PENDING, PENDING])


def test_cancel_before_anything_ran_skips_every_stage() -> None:
    assert cancel(FRESH) == [SKIPPED] * N
    assert overall(cancel(FRESH), claimed=False) == CANCELLED
    assert overall(FRESH, claimed=False) == QUEUED
    assert overall(FRESH, claimed=True) == RUNNING


def test_refusals() -> None:
    with pytest.raises(Conflict):
        start(FRESH, 1)
    with pytest.raises(Conflict):
        finish(FRESH, 0, SUCCEEDED)
    with pytest.raises(ValueError, match="not an outcome"):
        finish(start(FRESH, 0), 0, SKIPPED)
    with pytest.raises(Invalid) as info:
        retry_from([FAILED, SKIPPED, SKIPPED, SKIPPED], "flash")
    assert info.value.field == "stage"
    # A stopped stage after one that did not succeed (not reachable by the rules) is not retried.
    with pytest.raises(Conflict):
        retry_from([SKIPPED, FAILED, SKIPPED, SKIPPED], "deploy")
    assert pipeline_stages.STOPPED == (FAILED, CANCELLED)
