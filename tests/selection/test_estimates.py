"""Duration estimates and queued jobs' estimated start times (R3.2, R3.5)."""

from __future__ import annotations

import pytest

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture
from labfleet.selection import DurationSample, EstimateModel, EstimateSource, estimated_start

ARM64 = Architecture.arm64


def test_estimate_is_the_median_of_the_last_n_most_specific_first() -> None:
    samples = [DurationSample(1, ARM64, s) for s in (9000.0, 100.0, 200.0, 300.0)]
    samples.append(DurationSample(1, ARM64, 50.0, "u-boot.git"))
    model = EstimateModel.from_samples(samples, last_n=3)
    # The 9000 s build fell out of the window of 3 (the u-boot one counts for the server).
    assert model.estimate(server_id=1, architecture=ARM64).seconds == 200.0
    repo = model.estimate(server_id=1, architecture=ARM64, repository="u-boot.git")
    assert (repo.seconds, repo.source) == (50.0, EstimateSource.repository_history)
    hinted = model.estimate(server_id=2, architecture=ARM64, hint_s=700.0)
    assert (hinted.seconds, hinted.source) == (700.0, EstimateSource.request_hint)
    other = model.estimate(server_id=2, architecture=ARM64)
    assert other.source is EstimateSource.architecture_history
    none = model.estimate(server_id=2, architecture=Architecture.s390x)
    assert (none.seconds, none.source) == (1800.0, EstimateSource.default)


def test_next_job_starts_when_a_slot_is_free() -> None:
    # Validates: 3.5
    assert estimated_start(position=0, running_remaining_s=[300.0], slots=2) == 0.0
    assert estimated_start(position=0, running_remaining_s=[300.0, 100.0], slots=2) == 100.0


def test_queued_jobs_take_the_earliest_free_slot_in_order() -> None:
    # Validates: 3.5
    # Slots free at 100 and 300; job 0 (600 s) takes the first, job 1 (50 s) the second,
    # job 2 the slot job 1 frees at 350.
    running = [300.0, 100.0]
    ahead = [600.0, 50.0]
    starts = [
        estimated_start(position=p, running_remaining_s=running, slots=2, ahead_durations_s=ahead)
        for p in range(3)
    ]
    assert starts == [100.0, 300.0, 350.0]
    # Without known durations the default stands in for the jobs ahead.
    assert estimated_start(position=1, running_remaining_s=[10.0], slots=1, default_duration_s=60.0) == 70.0


def test_overrunning_and_excess_running_jobs() -> None:
    # A job past its estimate is expected to end now; jobs beyond a lowered limit still hold slots.
    assert estimated_start(position=0, running_remaining_s=[-30.0], slots=1) == 0.0
    assert estimated_start(position=0, running_remaining_s=[50.0, 20.0, 80.0], slots=2) == 50.0


def test_bad_inputs_are_invalid() -> None:
    with pytest.raises(Invalid):
        estimated_start(position=-1, running_remaining_s=[], slots=1)
    with pytest.raises(Invalid):
        estimated_start(position=0, running_remaining_s=[], slots=0)
