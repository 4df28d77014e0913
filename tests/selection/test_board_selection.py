"""Examples of board decisions and what their explanations say (R6.2, R11.3, R11.4, R13.3, R13.5)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from labfleet.errors import Invalid
from labfleet.schemas.enums import Architecture, BoardStatus
from labfleet.selection import (
    BoardCandidate,
    BoardRequest,
    BoardWeights,
    Exclusion,
    Explanation,
    NoteCode,
    Outcome,
    select_board,
)

ARM64 = Architecture.arm64
NOW = datetime(2024, 6, 11, 12, 0, tzinfo=UTC)


def board(i: int, **changes: object) -> BoardCandidate:
    """A healthy, free, never used arm64 rpi4 in rack a, with a USB Ethernet adapter and an SD mux."""
    base = BoardCandidate(
        id=i,
        name=f"rpi4-{i}",
        status=BoardStatus.online,
        architecture=ARM64,
        board_type="rpi4",
        peripherals=frozenset({"usb-ethernet", "sd-mux"}),
        labels={"rack": "a"},
        reachable=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(explanation: Explanation, candidate_id: int) -> list[Exclusion]:
    return [r.code for r in explanation.report(candidate_id).reasons]


def test_explanation_names_every_exclusion_and_scores_the_rest() -> None:
    # Validates: 13.3, 13.5, 6.2, 12.1
    candidates = [
        board(1, status=BoardStatus.decommissioned),
        board(2, architecture=Architecture.arm),
        board(3, board_type="beaglebone"),
        board(4, peripherals=frozenset({"usb-ethernet"})),
        board(5, labels={"rack": "b"}),
        board(6, status=BoardStatus.maintenance),
        board(7, status=BoardStatus.offline, reachable=False),
        board(8, status=BoardStatus.flashing),
        board(9, status=BoardStatus.failed),
        board(10, reachable=False, consecutive_failures=2),
        board(11, held=True, held_by="alice", held_until=NOW + timedelta(hours=1)),
        board(12, uses=3),
        board(13, status=BoardStatus.degraded),
        board(14, uses=1, reachable=None),
    ]
    request = BoardRequest(
        architecture=ARM64, board_type="rpi4", peripherals=frozenset({"sd-mux"}), labels={"rack": "a"}
    )
    decision = select_board(request=request, candidates=candidates)
    explanation = decision.explanation

    assert decision.outcome is Outcome.assigned
    assert decision.chosen is not None and decision.chosen.id == 14
    assert codes(explanation, 1) == [Exclusion.decommissioned]
    assert codes(explanation, 2) == [Exclusion.architecture]
    assert codes(explanation, 3) == [Exclusion.board_type]
    assert codes(explanation, 4) == [Exclusion.peripherals]
    assert codes(explanation, 5) == [Exclusion.labels]
    assert codes(explanation, 6) == [Exclusion.maintenance]
    assert codes(explanation, 7) == [Exclusion.offline, Exclusion.unreachable]
    assert codes(explanation, 8) == [Exclusion.flashing]
    assert codes(explanation, 9) == [Exclusion.failed]
    assert codes(explanation, 10) == [Exclusion.unreachable]
    assert codes(explanation, 11) == [Exclusion.reserved]
    messages = {r.id: [x.message for x in r.reasons] for r in explanation.candidates}
    assert messages[2] == ["is arm, not arm64"]
    assert messages[3] == ["is a beaglebone, not a rpi4"]
    assert messages[4] == ["lacks sd-mux"]
    assert messages[8] == ["being flashed: locked until it is done"]
    assert messages[11] == ["held by alice until 2024-06-11T13:00+00:00"]
    assert messages[5] == ["lacks label rack=a"]
    # Online before degraded; within, by score: 1 use and unchecked (0.5) beats 3 uses and healthy (0.475).
    assert [r.id for r in explanation.candidates][:3] == [14, 12, 13]
    fourteen = explanation.report(14)
    assert {n.code for n in fourteen.notes} == {NoteCode.health_unknown}
    assert fourteen.score is not None
    assert [(p.name, p.value) for p in fourteen.score.parts] == [("usage", 0.5), ("health", 0.5)]
    assert {n.code for n in explanation.report(13).notes} == {NoteCode.degraded}

    as_json = json.loads(json.dumps(decision.as_dict()))
    assert as_json["chosen_id"] == 14
    assert as_json["explanation"]["weights"] == {"usage": 0.7, "health": 0.3}
    assert as_json["explanation"]["request"]["peripherals"] == ["sd-mux"]


def test_degraded_boards_come_after_healthy_ones_however_used() -> None:
    # Validates: 13.3, 10.4
    worn = board(1, uses=40, last_used_at=NOW)
    hot = board(2, status=BoardStatus.degraded)
    decision = select_board(request=BoardRequest(architecture=ARM64), candidates=[hot, worn])
    assert decision.chosen == worn
    only_hot = select_board(request=BoardRequest(architecture=ARM64), candidates=[hot])
    assert only_hot.chosen == hot


def test_equally_used_boards_take_turns_least_recently_used_first() -> None:
    # Validates: 13.4
    recent = board(1, uses=2, last_used_at=NOW)
    older = board(2, uses=2, last_used_at=NOW - timedelta(days=2))
    never = board(3, uses=2)
    request = BoardRequest(architecture=ARM64)
    assert select_board(request=request, candidates=[recent, older, never]).chosen == never
    assert select_board(request=request, candidates=[recent, older]).chosen == older


def test_health_breaks_ties_of_use() -> None:
    # Validates: 13.3
    flaky = board(1, consecutive_failures=1)
    steady = board(2)
    decision = select_board(request=BoardRequest(architecture=ARM64), candidates=[flaky, steady])
    assert decision.chosen == steady
    notes = {n.code: n.message for n in decision.explanation.report(1).notes}
    assert notes[NoteCode.recent_failures] == "1 failed health check(s) in a row"


def test_no_such_board_is_rejected_with_the_first_missing_requirement() -> None:
    # Validates: 11.3, 13.3 (the API answers 422)
    pool = [board(1), board(2, board_type="imx8mp", status=BoardStatus.maintenance)]
    cases = [
        (
            BoardRequest(architecture=Architecture.riscv64),
            Exclusion.architecture,
            "no riscv64 board in the pool",
        ),
        (
            BoardRequest(architecture=ARM64, board_type="jetson"),
            Exclusion.board_type,
            "no arm64 board in the pool is a jetson",
        ),
        (
            BoardRequest(architecture=ARM64, board_type="rpi4", peripherals=frozenset({"can", "sd-mux"})),
            Exclusion.peripherals,
            "no arm64 rpi4 in the pool has can, sd-mux",
        ),
        (
            BoardRequest(architecture=ARM64, peripherals=frozenset({"sd-mux"}), labels={"team": "net"}),
            Exclusion.labels,
            "no arm64 board with sd-mux in the pool has the labels team=net",
        ),
    ]
    for request, code, message in cases:
        decision = select_board(request=request, candidates=pool)
        assert decision.outcome is Outcome.rejected
        assert decision.rejected is not None
        assert (decision.rejected.code, decision.rejected.message) == (code, message)
        assert decision.explanation.summary == message
    gone = select_board(
        request=BoardRequest(architecture=ARM64), candidates=[board(1, status=BoardStatus.decommissioned)]
    )
    assert gone.rejected is not None and gone.rejected.code is Exclusion.architecture


def test_matching_boards_all_taken_is_unavailable_with_the_soonest_free_first() -> None:
    # Validates: 11.4, 6.2, 12.1
    candidates = [
        board(1, status=BoardStatus.failed),
        board(2, held=True, held_by="bob", held_until=NOW + timedelta(hours=3)),
        board(3, status=BoardStatus.maintenance),
        board(4, held=True, held_by="alice", held_until=NOW + timedelta(minutes=20)),
        board(5, status=BoardStatus.flashing),
        board(6, reachable=False),
        board(7, board_type="imx8mp"),
    ]
    request = BoardRequest(architecture=ARM64, board_type="rpi4")
    decision = select_board(request=request, candidates=candidates, max_alternatives=6)
    assert decision.outcome is Outcome.unavailable
    assert decision.chosen is None and decision.rejected is None
    assert decision.explanation.summary == "6 board(s) match, none is free now"
    # Reservations ending soonest and flashing first; then unreachable, maintenance, failed.
    assert [a.id for a in decision.alternatives] == [4, 2, 5, 6, 3, 1]
    first = decision.alternatives[0]
    assert (first.held_by, first.held_until, first.available_now) == (
        "alice",
        NOW + timedelta(minutes=20),
        False,
    )
    as_json = json.loads(json.dumps(decision.as_dict()))
    assert as_json["alternatives"][0]["held_until"] == "2024-06-11T12:20:00+00:00"
    assert as_json["alternatives"][0]["lacks"] == [
        {"code": "reserved", "message": "held by alice until 2024-06-11T12:20+00:00"}
    ]


def test_a_pinned_board_that_is_taken_suggests_free_ones() -> None:
    # Validates: 11.2, 11.4
    candidates = [
        board(1, status=BoardStatus.flashing),
        board(2, uses=5),
        board(3),
        board(4, architecture=Architecture.arm),
    ]
    request = BoardRequest(architecture=ARM64, board_id=1)
    decision = select_board(request=request, candidates=candidates)
    assert decision.outcome is Outcome.unavailable
    assert (
        decision.explanation.summary
        == "board rpi4-1 cannot be had now: being flashed: locked until it is done"
    )
    assert codes(decision.explanation, 3) == [Exclusion.not_pinned]
    assert [(a.id, a.available_now) for a in decision.alternatives] == [(3, True), (2, True)]

    wrong = select_board(request=replace(request, board_id=4), candidates=candidates)
    assert wrong.rejected is not None
    assert wrong.rejected.message == "board rpi4-4 cannot take it: is arm, not arm64"
    assert [a.id for a in wrong.alternatives] == [3, 2, 1]

    unknown = select_board(request=replace(request, board_id=99), candidates=candidates)
    assert unknown.rejected is not None
    assert unknown.rejected.message == "no board with id 99"

    pinned = select_board(request=replace(request, board_id=2), candidates=candidates)
    assert pinned.chosen is not None and pinned.chosen.id == 2


def test_weights_and_duplicates() -> None:
    used_but_steady = board(1, uses=1)
    fresh_but_flaky = board(2, consecutive_failures=3)
    request = BoardRequest(architecture=ARM64)
    assert (
        select_board(request=request, candidates=[used_but_steady, fresh_but_flaky]).chosen == fresh_but_flaky
    )
    health_first = select_board(
        request=request,
        candidates=[used_but_steady, fresh_but_flaky],
        weights=BoardWeights(usage=1, health=9),
    )
    assert health_first.chosen == used_but_steady
    with pytest.raises(Invalid):
        select_board(request=request, candidates=[board(1), board(1)])
    with pytest.raises(Invalid):
        BoardWeights(usage=0, health=0)
