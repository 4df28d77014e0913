"""Examples of build server decisions and what their explanations say (R3.3, R13.5)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture, ServerStatus
from labfleet.selection import (
    BuildRequest,
    BuildServerCandidate,
    DurationSample,
    EstimateModel,
    Exclusion,
    NoteCode,
    Outcome,
    Thresholds,
    select_build_server,
)

ARM64 = Architecture.arm64
X86 = Architecture.x86_64


def server(i: int, **changes: object) -> BuildServerCandidate:
    base = BuildServerCandidate(
        id=i,
        name=f"bs-{i}",
        status=ServerStatus.online,
        architectures=frozenset({X86, ARM64}),
        max_concurrent_builds=4,
        load_1m=2.0,
        cpu_cores=16,
        disk_free_gb=400.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_explanation_names_every_exclusion_and_scores_the_rest() -> None:
    # Validates: 13.5, 2.4, 2.5, 12.1
    candidates = [
        server(1, architectures=frozenset({X86})),
        server(2, status=ServerStatus.offline),
        server(3, status=ServerStatus.maintenance),
        server(4, disk_free_gb=3.0),
        server(5, labels={"rack": "b"}),
        server(6, status=ServerStatus.decommissioned),
        server(7, labels={"rack": "a"}, disk_free_gb=20.0),
        server(8, labels={"rack": "a"}, status=ServerStatus.degraded, load_1m=20.0),
    ]
    request = BuildRequest(architecture=ARM64, labels={"rack": "a"})
    decision = select_build_server(request=request, candidates=candidates)
    explanation = decision.explanation

    assert decision.outcome is Outcome.assigned
    assert decision.chosen is not None and decision.chosen.id == 7
    assert not decision.must_wait
    codes = {r.id: [x.code for x in r.reasons] for r in explanation.candidates}
    assert codes[1] == [Exclusion.no_toolchain, Exclusion.labels]
    assert codes[2][-1] is Exclusion.offline
    assert codes[3][-1] is Exclusion.maintenance
    assert codes[4][-1] is Exclusion.disk_critical
    assert codes[5] == [Exclusion.labels]
    assert codes[6] == [Exclusion.decommissioned, Exclusion.labels]
    assert explanation.report(4).reasons[-1].message == "3.0 GB free, below the critical 10 GB"
    assert explanation.report(1).reasons[0].message == "no toolchain for arm64"
    # Eligible first, best first; excluded after, in the order they came.
    assert [r.id for r in explanation.candidates] == [7, 8, 1, 2, 3, 4, 5, 6]
    seven, eight = explanation.report(7), explanation.report(8)
    assert (seven.rank, eight.rank) == (1, 2)
    assert {n.code for n in seven.notes} == {NoteCode.disk_warning}
    assert {n.code for n in eight.notes} == {NoteCode.degraded}
    assert seven.score is not None
    assert [p.name for p in seven.score.parts] == ["load", "slots", "queue", "duration"]
    assert seven.score.total == pytest.approx(sum(p.value * p.weight for p in seven.score.parts), abs=1e-5)

    as_json = json.loads(json.dumps(decision.as_dict()))
    assert as_json["chosen_id"] == 7
    assert as_json["explanation"]["weights"] == {"load": 0.35, "slots": 0.25, "queue": 0.2, "duration": 0.2}
    assert as_json["explanation"]["candidates"][2]["reasons"][0] == {
        "code": "no_toolchain",
        "message": "no toolchain for arm64",
    }


def test_no_toolchain_anywhere_is_rejected_at_once() -> None:
    # Validates: 3.3
    decision = select_build_server(
        request=BuildRequest(architecture=Architecture.riscv64),
        candidates=[server(1), server(2, status=ServerStatus.offline)],
    )
    assert decision.outcome is Outcome.rejected
    assert decision.rejected is not None
    assert decision.rejected.code is Exclusion.no_toolchain
    assert decision.rejected.message == "no server has a toolchain for riscv64"
    assert decision.chosen is None and not decision.must_wait


def test_only_decommissioned_or_unlabelled_servers_is_rejected_too() -> None:
    # Validates: 3.3, 12.5
    gone = select_build_server(
        request=BuildRequest(architecture=ARM64), candidates=[server(1, status=ServerStatus.decommissioned)]
    )
    assert gone.rejected is not None
    assert gone.rejected.message == "no server in the pool has a toolchain for arm64"
    unlabelled = select_build_server(
        request=BuildRequest(architecture=ARM64, labels={"ccache": "yes"}), candidates=[server(1)]
    )
    assert unlabelled.rejected is not None
    assert unlabelled.rejected.code is Exclusion.labels
    assert unlabelled.rejected.message == "no server with a toolchain for arm64 has the labels ccache=yes"


def test_busy_servers_queue_on_the_best_one() -> None:
    # Validates: 3.3, 13.4
    candidates = [
        server(1, active_builds=4, queued_builds=3),
        server(2, active_builds=4, queued_builds=1),
        server(3, active_builds=2, queued_builds=2),  # its free slots are promised to queued builds
    ]
    decision = select_build_server(request=BuildRequest(architecture=ARM64), candidates=candidates)
    assert decision.outcome is Outcome.queued
    assert decision.must_wait
    assert decision.chosen is not None and decision.chosen.id == 3
    assert {n.code for n in decision.explanation.report(1).notes} == {NoteCode.no_free_slot}


def test_a_server_over_its_load_limit_starts_nothing_new() -> None:
    # Validates: 13.1
    hot = server(1, load_1m=40.0)
    decision = select_build_server(
        request=BuildRequest(architecture=ARM64),
        candidates=[hot, server(2, active_builds=4)],
        thresholds=Thresholds(max_load_per_core=2.0),
    )
    assert decision.outcome is Outcome.queued
    notes = {n.code: n.message for n in decision.explanation.report(1).notes}
    assert notes[NoteCode.overloaded] == "load 2.50 per core, above 2"


def test_supporting_servers_that_cannot_take_builds_now_make_it_wait() -> None:
    # Validates: 2.5, 12.1
    decision = select_build_server(
        request=BuildRequest(architecture=ARM64),
        candidates=[server(1, status=ServerStatus.maintenance), server(2, disk_free_gb=1.0)],
    )
    assert decision.outcome is Outcome.waiting
    assert decision.must_wait and decision.chosen is None and decision.rejected is None


def test_pinned_server() -> None:
    # Validates: 3.1, 3.3
    candidates = [
        server(1),
        server(2, architectures=frozenset({X86})),
        server(3, status=ServerStatus.offline),
    ]
    pinned = select_build_server(request=BuildRequest(architecture=ARM64, server_id=1), candidates=candidates)
    assert pinned.chosen is not None and pinned.chosen.id == 1
    assert pinned.explanation.report(2).reasons[0].code is Exclusion.not_pinned

    wrong = select_build_server(request=BuildRequest(architecture=ARM64, server_id=2), candidates=candidates)
    assert wrong.rejected is not None
    assert wrong.rejected.message == "build server bs-2 cannot take it: no toolchain for arm64"

    unknown = select_build_server(
        request=BuildRequest(architecture=ARM64, server_id=9), candidates=candidates
    )
    assert unknown.rejected is not None
    assert unknown.rejected.message == "no build server with id 9"

    down = select_build_server(request=BuildRequest(architecture=ARM64, server_id=3), candidates=candidates)
    assert down.outcome is Outcome.waiting


def test_history_makes_the_faster_server_win() -> None:
    # Validates: 3.2, 13.1
    history = EstimateModel.from_samples(
        [DurationSample(1, ARM64, 1200.0)] * 3 + [DurationSample(2, ARM64, 600.0, "linux.git")] * 3
    )
    request = BuildRequest(architecture=ARM64, repository="linux.git")
    decision = select_build_server(request=request, candidates=[server(1), server(2)], history=history)
    assert decision.chosen is not None and decision.chosen.id == 2
    assert decision.explanation.report(1).estimated_duration_s == 1200.0
    duration = decision.explanation.report(2).score
    assert duration is not None
    assert duration.parts[3].detail == "~10 min, median of the last 3 builds of this repo here"


def test_duplicate_candidates_and_bad_thresholds_are_invalid() -> None:
    with pytest.raises(Invalid):
        select_build_server(request=BuildRequest(architecture=ARM64), candidates=[server(1), server(1)])
    with pytest.raises(Invalid):
        Thresholds(disk_warning_gb=5, disk_critical_gb=10)
